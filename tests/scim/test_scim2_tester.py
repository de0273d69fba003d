"""scim2-tester, a third-party SCIM 2.0 conformance checker, against the server on a real
socket: discovery (ServiceProviderConfig, ResourceTypes, Schemas), then for each resource type
it discovers, creation, reads, queries, replacement, patches and deletion with the attributes
the server publishes. Every check it has must succeed."""
import threading

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from werkzeug.serving import make_server

from tests.scim.conftest import scim_key

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


@pytest.fixture
def server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_scim2_tester_passes_every_check(server, admin, factory, org):
    key = scim_key(admin, factory, org)
    with httpx2.Client(base_url=f"{server}/scim/v2", headers={"Authorization": f"Bearer {key}"},
                       timeout=30) as http:
        results = check_server(SyncSCIMClient(http), raise_exceptions=False)
    assert results, "scim2-tester ran no check"
    failed = [r for r in results if r.status not in PASSING]
    report = "\n".join(f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in failed)
    assert not failed, f"{len(failed)} of {len(results)} checks failed:\n{report}"
