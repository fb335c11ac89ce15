"""Fixtures: the `cairn` binary, an isolated workspace per test, and a pytest-lsp client
connected to `cairn lsp` that speaks with a real editor's capability profile."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features
from lsprotocol import converters
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage

import support

# The editors whose published capabilities the sessions replay (pytest-lsp profiles).
PROFILES = {
    "neovim": "neovim@v0.11.0",
    "vscode": "visual-studio-code",
}


@pytest.fixture(scope="session")
def cairn_bin():
    """The binary under test; a missing or LSP-less binary fails every test that needs it."""
    path = support.cairn_bin()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p cairn` or set CAIRN_BIN")
    r = subprocess.run([str(path), "lsp", "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"`{path} lsp --help` exited {r.returncode}: {r.stderr.strip()[:2000]}")
    return path


@pytest.fixture
def ws(tmp_path, cairn_bin):
    return support.make_workspace(tmp_path)


class CairnClient(LanguageClient):
    """pytest-lsp's client, plus what Cairn's protocol adds: chat deltas arrive as
    `$/progress` with the request's partialResultToken and `{delta}` values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deltas: dict[Any, list[str]] = {}
        self.progress_values: list[tuple[Any, Any]] = []
        self.server_requests: list[str] = []

    async def request(self, method: str, params: Any = None, timeout: float = 120.0, msg_id=None):
        """A request by method name (custom methods have no typed helper); the raw result."""
        fut = self.protocol.send_request_async(method, params, msg_id=msg_id)
        return await asyncio.wait_for(fut, timeout)

    def cancel(self, msg_id) -> None:
        self.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))


def plain_json_converter():
    """lsprotocol's converter, but untyped messages (Cairn's own methods) keep their JSON as
    dicts and lists; pygls's default turns them into namedtuples."""
    converter = converters.get_converter()
    for cls in (JsonRPCRequestMessage, JsonRPCResponseMessage, JsonRPCNotification):
        converter.register_structure_hook(cls, lambda obj, cls: cls(**obj))
    return converter


def make_client() -> CairnClient:
    client = CairnClient(converter_factory=plain_json_converter)
    features = {k: v for k, v in DEFAULT_CLIENT_FEATURES.items() if k != types.PROGRESS}
    register_lsp_features(client, features)

    @client.feature(types.PROGRESS)
    def progress(ls: CairnClient, params: types.ProgressParams):
        value = params.value
        ls.progress_values.append((params.token, value))
        if isinstance(value, dict) and "delta" in value:
            ls.deltas.setdefault(params.token, []).append(value["delta"])
        elif isinstance(value, dict) and value.get("kind") in ("begin", "report", "end"):
            ls.progress_reports.setdefault(params.token, []).append(value)

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(ls: CairnClient, params):
        ls.server_requests.append(types.CLIENT_REGISTER_CAPABILITY)
        return None

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: CairnClient, params):
        # No edit is ever applied without a person's action, and no test acts as that person.
        ls.server_requests.append(types.WORKSPACE_APPLY_EDIT)
        return types.ApplyWorkspaceEditResult(applied=False, failure_reason="test client")

    return client


async def start_client(ws: support.Workspace, args: list[str] = ()) -> CairnClient:
    config = ClientServerConfig(
        server_command=[str(support.cairn_bin()), "lsp", *args],
        client_factory=make_client,
        server_env=ws.env,
    )
    return await config.start()


async def initialize(client: CairnClient, ws: support.Workspace, profile: str) -> types.InitializeResult:
    params = types.InitializeParams(
        capabilities=client_capabilities(PROFILES[profile]),
        root_uri=ws.repo.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=ws.repo.as_uri(), name=ws.repo.name)],
        client_info=types.ClientInfo(name=f"cairn-tests ({profile} profile)"),
    )
    return await asyncio.wait_for(client.initialize_session(params), 120)


@pytest_asyncio.fixture(params=list(PROFILES))
async def session(request, ws):
    """An initialized session with the editor profile of the parameter; shut down cleanly
    after the test (and the exit code checked)."""
    client = await start_client(ws)
    result = await initialize(client, ws, request.param)
    client.profile = request.param
    client.init_result = result
    yield client
    if client._server is not None and client._server.returncode is None:
        await asyncio.wait_for(client.shutdown_session(), 60)
        assert client._server.returncode == 0, f"cairn lsp exited {client._server.returncode} after shutdown/exit"
    await client.stop()
