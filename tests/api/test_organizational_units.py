"""organizational_units over HTTP: the tree, its paths, moves, cycles, filters and includes (API.md section 4)."""
import pytest

from tests.helpers import API, assert_jsonapi, error_of, ids


def unit_doc(id_=None, **attributes):
    data = {"type": "organizational_units", "attributes": attributes}
    if id_ is not None:
        data["id"] = str(id_)
    return {"data": data}


def create(admin, **attributes):
    return assert_jsonapi(admin.post("/organizational_units", unit_doc(**attributes)), 201)["data"]


def paths(admin, organization_id=None):
    """{id: path} of every unit (of one organization)."""
    params = {"filter[organization_id]": str(organization_id)} if organization_id else None
    body = assert_jsonapi(admin.get("/organizational_units", params=params), 200)
    return {int(item["id"]): item["attributes"]["path"] for item in body["data"]}


def patch(admin, unit_id, **attributes):
    return admin.patch(f"/organizational_units/{unit_id}", unit_doc(unit_id, **attributes))


@pytest.fixture
def org(factory):
    return factory.organization()


@pytest.fixture
def tree(factory, org):
    """/sales, /sales/emea, /sales/emea/paris and /marketing (the factory builds paths like the API)."""
    sales = factory.unit(org, "sales")
    emea = factory.unit(org, "emea", parent=sales)
    paris = factory.unit(org, "paris", parent=emea)
    marketing = factory.unit(org, "marketing")
    return {"sales": sales.id, "emea": emea.id, "paris": paris.id, "marketing": marketing.id}


# ------------------------------------------------------------------ CRUD and paths

def test_create_returns_201_location_and_path(admin, org):
    response = admin.post("/organizational_units", unit_doc(
        organization_id=org.id, name="sales", description="Sellers", policies={}))
    data = assert_jsonapi(response, 201)["data"]
    assert response.headers["Location"].endswith(f"{API}/organizational_units/{data['id']}")
    attributes = data["attributes"]
    assert attributes["path"] == "/sales"
    assert attributes["parent_id"] is None
    assert attributes["organization_id"] == org.id
    assert attributes["description"] == "Sellers"
    assert attributes["policies"] == {}
    assert "ancestry" not in attributes


def test_tree_built_through_the_api_gets_paths(admin, org):
    sales = create(admin, organization_id=org.id, name="sales")
    emea = create(admin, organization_id=org.id, name="emea", parent_id=int(sales["id"]))
    paris = create(admin, organization_id=org.id, name="paris", parent_id=int(emea["id"]))
    assert (sales["attributes"]["path"], emea["attributes"]["path"], paris["attributes"]["path"]) == (
        "/sales", "/sales/emea", "/sales/emea/paris")
    assert paris["attributes"]["parent_id"] == int(emea["id"])
    assert paths(admin) == {int(sales["id"]): "/sales", int(emea["id"]): "/sales/emea",
                            int(paris["id"]): "/sales/emea/paris"}


def test_update_description_keeps_path(admin, tree):
    data = assert_jsonapi(patch(admin, tree["emea"], description="Europe"), 200)["data"]
    assert data["attributes"]["description"] == "Europe"
    assert data["attributes"]["path"] == "/sales/emea"


def test_delete_leaf_is_204_then_404(admin, tree):
    response = admin.delete(f"/organizational_units/{tree['paris']}")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert error_of(admin.get(f"/organizational_units/{tree['paris']}"), 404)["code"] == "not_found"
    assert tree["paris"] not in paths(admin)


def test_rename_rewrites_the_whole_subtree(admin, tree):
    data = assert_jsonapi(patch(admin, tree["sales"], name="revenue"), 200)["data"]
    assert data["attributes"]["path"] == "/revenue"
    assert paths(admin) == {tree["sales"]: "/revenue", tree["emea"]: "/revenue/emea",
                            tree["paris"]: "/revenue/emea/paris", tree["marketing"]: "/marketing"}


def test_rename_a_middle_unit(admin, tree):
    assert_jsonapi(patch(admin, tree["emea"], name="europe"), 200)
    assert paths(admin)[tree["paris"]] == "/sales/europe/paris"
    assert paths(admin)[tree["sales"]] == "/sales"


def test_move_under_another_root_rewrites_its_subtree(admin, tree):
    data = assert_jsonapi(patch(admin, tree["emea"], parent_id=tree["marketing"]), 200)["data"]
    assert data["attributes"]["path"] == "/marketing/emea"
    assert data["attributes"]["parent_id"] == tree["marketing"]
    assert paths(admin) == {tree["sales"]: "/sales", tree["emea"]: "/marketing/emea",
                            tree["paris"]: "/marketing/emea/paris", tree["marketing"]: "/marketing"}


def test_move_to_the_root(admin, tree):
    assert_jsonapi(patch(admin, tree["emea"], parent_id=None), 200)
    assert paths(admin)[tree["emea"]] == "/emea"
    assert paths(admin)[tree["paris"]] == "/emea/paris"


def test_move_then_move_again_keeps_paths_consistent(admin, tree):
    assert_jsonapi(patch(admin, tree["emea"], parent_id=tree["marketing"]), 200)
    assert_jsonapi(patch(admin, tree["paris"], parent_id=tree["sales"]), 200)
    assert_jsonapi(patch(admin, tree["marketing"], parent_id=tree["paris"]), 200)
    assert paths(admin) == {tree["sales"]: "/sales", tree["paris"]: "/sales/paris",
                            tree["marketing"]: "/sales/paris/marketing",
                            tree["emea"]: "/sales/paris/marketing/emea"}


@pytest.mark.parametrize("new_parent", ["sales", "emea", "paris"])
def test_moving_below_itself_or_a_descendant_is_a_422_cycle(admin, tree, new_parent):
    before = paths(admin)
    error = error_of(patch(admin, tree["sales"], parent_id=tree[new_parent]), 422)
    assert error["code"] == "cycle"
    assert error["source"]["pointer"] == "/data/attributes/parent_id"
    assert paths(admin) == before
    shown = assert_jsonapi(admin.get(f"/organizational_units/{tree['sales']}"), 200)["data"]
    assert shown["attributes"]["parent_id"] is None


def test_parent_in_another_organization_is_422(admin, tree, factory):
    other = factory.organization()
    response = admin.post("/organizational_units", unit_doc(
        organization_id=other.id, name="intruder", parent_id=tree["sales"]))
    assert error_of(response, 422)["source"]["pointer"] == "/data/attributes/parent_id"
    assert paths(admin, other.id) == {}


def test_moving_under_a_parent_of_another_organization_is_422(admin, tree, factory):
    foreign = factory.unit(factory.organization(), "foreign")
    error = error_of(patch(admin, tree["emea"], parent_id=foreign.id), 422)
    assert error["source"]["pointer"] == "/data/attributes/parent_id"
    assert paths(admin)[tree["emea"]] == "/sales/emea"


def test_unknown_parent_is_422(admin, org):
    response = admin.post("/organizational_units", unit_doc(organization_id=org.id, name="x", parent_id=999999))
    assert error_of(response, 422)["source"]["pointer"] == "/data/attributes/parent_id"


def test_sibling_name_clash_is_409(admin, tree, org):
    response = admin.post("/organizational_units", unit_doc(
        organization_id=org.id, name="emea", parent_id=tree["sales"]))
    assert error_of(response, 409)["code"] == "not_unique"
    assert len(paths(admin)) == 4


def test_renaming_into_a_sibling_name_is_409(admin, tree, org):
    apac = create(admin, organization_id=org.id, name="apac", parent_id=tree["sales"])
    assert error_of(patch(admin, int(apac["id"]), name="emea"), 409)["code"] == "not_unique"
    assert paths(admin)[int(apac["id"])] == "/sales/apac"


def test_moving_next_to_a_namesake_is_409(admin, tree, org):
    create(admin, organization_id=org.id, name="emea", parent_id=tree["marketing"])
    assert error_of(patch(admin, tree["emea"], parent_id=tree["marketing"]), 409)["code"] == "not_unique"
    assert paths(admin)[tree["paris"]] == "/sales/emea/paris"


def test_same_name_elsewhere_is_fine(admin, tree, org, factory):
    create(admin, organization_id=org.id, name="emea", parent_id=tree["marketing"])
    other = create(admin, organization_id=factory.organization().id, name="sales")
    assert other["attributes"]["path"] == "/sales"


@pytest.mark.parametrize("name", ["a/b", ""])
def test_bad_name_is_422(admin, org, name):
    response = admin.post("/organizational_units", unit_doc(organization_id=org.id, name=name))
    assert error_of(response, 422)["source"]["pointer"] == "/data/attributes/name"
    assert paths(admin) == {}


def test_slash_in_a_new_name_is_422(admin, tree):
    assert error_of(patch(admin, tree["emea"], name="em/ea"), 422)["source"]["pointer"] == "/data/attributes/name"
    assert paths(admin)[tree["paris"]] == "/sales/emea/paris"


def test_path_is_read_only(admin, org, tree):
    response = admin.post("/organizational_units", unit_doc(organization_id=org.id, name="x", path="/y/x"))
    assert error_of(response, 422)["source"]["pointer"] == "/data/attributes/path"
    error = error_of(patch(admin, tree["emea"], path="/elsewhere"), 422)
    assert error["source"]["pointer"] == "/data/attributes/path"
    assert paths(admin)[tree["emea"]] == "/sales/emea"


# ------------------------------------------------------------------ delete

def test_delete_with_children_is_409_and_nothing_is_deleted(admin, tree):
    before = paths(admin)
    assert error_of(admin.delete(f"/organizational_units/{tree['sales']}"), 409)["status"] == "409"
    assert paths(admin) == before
    emea = assert_jsonapi(admin.get(f"/organizational_units/{tree['emea']}"), 200)["data"]
    assert emea["attributes"]["parent_id"] == tree["sales"]


# ------------------------------------------------------------------ filters

@pytest.fixture
def forest(tree, factory):
    other = factory.unit(factory.organization(), "sales")
    return {**tree, "other_sales": other.id, "other_org": other.organization_id}


@pytest.mark.parametrize("params, expected", [
    (lambda u: {"filter[root_only]": "true"}, ["marketing", "other_sales", "sales"]),
    (lambda u: {"filter[root_only]": "false"}, ["emea", "paris"]),
    (lambda u: {"filter[path__prefix]": "/sales"}, ["emea", "other_sales", "paris", "sales"]),
    (lambda u: {"filter[path__prefix]": "/SALES/Emea"}, ["emea", "paris"]),
    (lambda u: {"filter[parent_id]": str(u["sales"])}, ["emea"]),
    (lambda u: {"filter[parent_id]": "null"}, ["marketing", "other_sales", "sales"]),
    (lambda u: {"filter[organization_id]": str(u["other_org"])}, ["other_sales"]),
    (lambda u: {"filter[name__match]": "EM"}, ["emea"]),
    (lambda u: {"filter[root_only]": "true", "filter[name__match]": "sal"}, ["other_sales", "sales"]),
])
def test_filters(admin, forest, params, expected):
    by_id = {v: k for k, v in forest.items() if k != "other_org"}
    body = assert_jsonapi(admin.get("/organizational_units", params=params(forest)), 200)
    assert sorted(by_id[int(item["id"])] for item in body["data"]) == expected


def test_path_prefix_follows_moves(admin, tree):
    assert_jsonapi(patch(admin, tree["emea"], parent_id=tree["marketing"]), 200)
    body = assert_jsonapi(admin.get("/organizational_units", params={"filter[path__prefix]": "/marketing"}), 200)
    assert ids(body) == sorted([tree["marketing"], tree["emea"], tree["paris"]])


def test_root_only_takes_a_boolean(admin, tree):
    error = error_of(admin.get("/organizational_units", params={"filter[root_only]": "yes"}), 400)
    assert error["source"]["parameter"] == "filter[root_only]"


# ------------------------------------------------------------------ relationships

def test_show_includes_children_parent_and_organization(admin, tree, org):
    params = {"included": "children,parent,organization"}
    body = assert_jsonapi(admin.get(f"/organizational_units/{tree['emea']}", params=params), 200)
    relationships = body["data"]["relationships"]
    assert relationships["children"]["data"] == [{"type": "organizational_units", "id": str(tree["paris"])}]
    assert relationships["parent"]["data"] == {"type": "organizational_units", "id": str(tree["sales"])}
    assert relationships["organization"]["data"] == {"type": "organizations", "id": str(org.id)}
    included = {(item["type"], int(item["id"])): item for item in body["included"]}
    assert set(included) == {("organizational_units", tree["paris"]), ("organizational_units", tree["sales"]),
                             ("organizations", org.id)}
    assert included[("organizational_units", tree["paris"])]["attributes"]["path"] == "/sales/emea/paris"


def test_list_includes_children_once(admin, tree):
    body = assert_jsonapi(admin.get("/organizational_units", params={"included": "children"}), 200)
    by_id = {int(item["id"]): item for item in body["data"]}
    assert by_id[tree["sales"]]["relationships"]["children"]["data"] == [
        {"type": "organizational_units", "id": str(tree["emea"])}]
    assert by_id[tree["paris"]]["relationships"]["children"]["data"] == []
    # every child is itself in the primary data, so nothing is repeated in included
    assert body["included"] == []


def test_children_endpoint_lists_direct_children_only(admin, tree, org):
    apac = create(admin, organization_id=org.id, name="apac", parent_id=tree["sales"])
    body = assert_jsonapi(admin.get(f"/organizational_units/{tree['sales']}/children"), 200)
    assert ids(body) == sorted([tree["emea"], int(apac["id"])])
    assert all(item["type"] == "organizational_units" for item in body["data"])


def test_children_endpoint_of_a_leaf_is_empty(admin, tree):
    assert assert_jsonapi(admin.get(f"/organizational_units/{tree['paris']}/children"), 200)["data"] == []


def test_children_endpoint_of_unknown_unit_is_404(admin):
    assert error_of(admin.get("/organizational_units/999999/children"), 404)["code"] == "not_found"


# ------------------------------------------------------------------ ou_accounts after a move

def test_ou_accounts_follows_a_moved_subtree(admin, tree, org, factory):
    person = factory.person(org, first_name="Pierre", organizational_unit_id=tree["paris"])
    account = factory.account(email="pierre@example.com", person_id=person.id, organization_id=org.id)

    def found_under(unit):
        body = assert_jsonapi(admin.get("/accounts", params={"filter[ou_accounts]": str(tree[unit])}), 200)
        return ids(body) == [account.id]

    assert found_under("sales") and found_under("emea") and not found_under("marketing")
    assert_jsonapi(patch(admin, tree["emea"], parent_id=tree["marketing"]), 200)
    assert found_under("marketing") and found_under("emea") and found_under("paris")
    assert not found_under("sales")
