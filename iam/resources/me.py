"""`/accounts/me`: the caller's own account, readable and self-manageable by everyone."""
from flask import request

from ..auth import email_change, passwords
from ..auth.stepup import require_step_up
from ..jsonapi import JsonApiError, JsonApiErrors, query
from ..jsonapi.errors import conflict, forbidden, invalid_field, json_pointer
from ..jsonapi.media import check_accept, read_json_body
from ..jsonapi.resource import WriteState
from ..jsonapi.views import snapshot
from ..models import Person, utcnow
from .accounts import normalise_email

# What self-service may write; anything else (enabled, organization_id, roles, ...) is a 403.
SELF_SERVICE = ("preferences", "consent_given", "first_name", "last_name", "email", "current_password")


def _me(api):
    check_accept()
    ctx = api.context()
    resource = api.resource("accounts")
    return ctx, resource


def show(api):
    ctx, resource = _me(api)
    spec = query.parse(request.args, resource, api, collection=False)
    # Authentication already loaded the caller's account: without includes, render that one.
    obj = resource.read(ctx, ctx.principal.account_id, spec) if spec.include else ctx.principal.account
    return api.render(resource, obj, spec, ctx, meta={"effective_roles": [_describe(r) for r in ctx.principal.roles]})


def _describe(role):
    """A role the caller holds now, and where it comes from."""
    source = {"source": "group", "group_id": str(role.group_id)} if hasattr(role, "group_id") else \
        {"source": "direct", "role_id": str(role.id)}
    return {"name": role.name, "scopes": role.scopes or {}, **source}


def _attributes(body, account_id, api):
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise JsonApiError(400, "invalid_document", "Bad request", "The body must be {\"data\": {...}}.", pointer="")
    data = body["data"]
    if api.canonical_type(data.get("type")) != "accounts":
        raise conflict("data.type must be accounts.", code="type_mismatch", pointer="/data/type")
    if "id" in data and data["id"] != str(account_id):
        raise conflict("data.id must be your own account's id (or left out).", code="id_mismatch", pointer="/data/id")
    if "relationships" in data:
        raise forbidden("Relationships cannot be changed through /accounts/me.", pointer="/data/relationships")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise JsonApiError(400, "invalid_document", "Bad request", "attributes must be an object.",
                           pointer="/data/attributes")
    denied = [forbidden(f"{name} cannot be changed through self-service.",
                        pointer=json_pointer("data", "attributes", name))
              for name in attributes if name not in SELF_SERVICE]
    if denied:
        raise JsonApiErrors(denied)
    return attributes


def update(api):
    ctx, resource = _me(api)
    if ctx.principal.read_only:
        raise forbidden("This API key is read-only.")
    spec = query.parse(request.args, resource, api, collection=False)
    attributes = _attributes(read_json_body(), ctx.principal.account_id, api)
    account = resource.get(ctx, ctx.principal.account_id, for_update=True)
    errors, values, person_values, new_email = [], {}, {}, None

    def pointer(name):
        return json_pointer("data", "attributes", name)

    if "preferences" in attributes:
        if not isinstance(attributes["preferences"], dict):
            errors.append(invalid_field(pointer("preferences"), "preferences must be a JSON object."))
        else:
            values["preferences"] = attributes["preferences"]
    if "consent_given" in attributes:
        if not isinstance(attributes["consent_given"], bool):
            errors.append(invalid_field(pointer("consent_given"), "consent_given must be true or false."))
        else:
            values["consent_given_at"] = utcnow() if attributes["consent_given"] else None
    for name in ("first_name", "last_name"):
        if name in attributes:
            value = attributes[name]
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                errors.append(invalid_field(pointer(name), f"{name} must be a string of at most 255 characters."))
            else:
                person_values[name] = value
    if "email" in attributes:
        try:
            if not isinstance(attributes["email"], str):
                raise ValueError("email must be a string.")
            new_email = normalise_email(attributes["email"])
        except Exception as exc:  # ValidationError or ValueError: both are client mistakes
            errors.append(invalid_field(pointer("email"), str(getattr(exc, "messages", [exc])[0])))
        current = attributes.get("current_password")
        if not isinstance(current, str) or not passwords.verify_password(account.password_hash, current):
            errors.append(invalid_field(pointer("current_password"),
                                        "Changing the email needs your current password.", code="invalid_credentials"))
    elif "current_password" in attributes:
        errors.append(invalid_field(pointer("current_password"), "current_password goes with email.",
                                    code="invalid_value"))
    if person_values and account.person_id is None and account.organization_id is None:
        errors.append(invalid_field(pointer(next(iter(person_values))),
                                    "This account has no person or organization to hold a name."))
    if errors:
        raise JsonApiErrors(errors)

    state = WriteState(resource, ctx, values, {}, account)
    before = snapshot(resource, account, list(values))
    meta, send_mail = {}, None
    if new_email is not None and new_email.lower() != account.email.lower():
        require_step_up(ctx.principal, ctx.now)
        # Not changed yet: the new address confirms it (iam/auth/email_change.py). The answer
        # is the same whether or not the address has an account elsewhere.
        meta["email_change"], send_mail = email_change.request_change(account, new_email, ctx.now)
    resource.update(state)
    if person_values:
        person = account.person
        if person is None:
            person = Person(organization_id=account.organization_id)
            ctx.session.add(person)
            account.person = person
        for name, value in person_values.items():
            setattr(person, name, value)
    api.flush(ctx)
    api.on_change(ctx, resource, "update", account, {**before, **({"person": "changed"} if person_values else {})},
                  {**snapshot(resource, account, list(values)), **person_values})
    response = api.render_stored(resource, ctx, account.id, spec, meta=meta)
    api.commit(ctx)
    api.after_commit([send_mail] if send_mail else [])
    return response


def register(api):
    def accounts_me():  # named: rate limits key on the view's name
        return show(api) if request.method == "GET" else update(api)

    api.blueprint.add_url_rule("/accounts/me", "accounts_me", accounts_me, methods=["GET", "PATCH"])
