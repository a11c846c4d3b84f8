"""Property-based fuzzing of every documented endpoint from the app's own OpenAPI schema: no 500s."""
from __future__ import annotations

import shutil

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (test extra)")
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.main import create_app
from indexer.config import Settings
from tests.conftest import mild_copies, photo_files


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "lib"
    root.mkdir()
    src = photo_files(1, offset=800)[0]
    shutil.copy(src, root / "a.jpg")
    mild_copies(src, root, "a")
    shutil.copy(photo_files(1, offset=801)[0], root / "b.jpg")
    st = Settings(data_dir=base / "data", decode_workers=1, roots=str(root))
    app = create_app(st)
    with TestClient(app):  # runs the lifespan: the Index is open while schemathesis calls the app
        app.state.index.ingest([str(root)])
        yield app


def test_no_server_errors(app) -> None:
    """Each operation in the schema, fuzzed by hypothesis (schemathesis's pytest plugin does not
    support this pytest version, so the strategies are driven directly)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, ran, calls = [], [], []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            calls.append(case.call_and_validate(checks=[not_a_server_error]).status_code)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every failing operation, then report them all
            failures.append(f"{op.label}: {str(exc)[:2000]}")
        ran.append(op.label)
    assert len(ran) >= 12, ran
    assert len(calls) >= 10 * len(ran), len(calls)
    print(f"{len(calls)} calls over {len(ran)} operations; statuses {sorted(set(calls))}")
    assert not failures, "\n\n".join(failures)
