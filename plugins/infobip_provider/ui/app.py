"""The FastAPI app of the Infobip page, mounted by Airflow's api-server at ``/infobip``.

Airflow 3.3 mounts a plugin's FastAPI app as it is: no authentication applies unless the app asks
for it. Every route that shows state here depends on Airflow's own ``get_user`` (the JWT of the UI's
``_token`` cookie, or an ``Authorization: Bearer`` token of the public API), so an unauthenticated
caller gets 401; then the auth manager decides what the user sees:

- a target is listed with the runs of the DAGs the user may read (``is_authorized_dag`` GET);
  a target or a rejects file no recorded run explains, and the store URIs and connection ids,
  are for users who may read connections (``is_authorized_connection`` GET);
- a rejects file (emails, phone numbers) downloads only for a user who may read the task data
  (XCom) of the DAG whose run wrote it. Its content is never part of the page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from infobip_provider.ui import URL_PREFIX, render
from infobip_provider.ui.data import SAFE_SEGMENT, Store, Target, discover_stores, find_target, load_targets

#: Headers of every answer that carries state: not cached, framed only by Airflow's own pages.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
}


class Authorizer(Protocol):
    """What the page asks Airflow's auth manager."""

    def readable_dag_ids(self, user: Any, dag_ids: set[str]) -> set[str]: ...

    def can_read_connections(self, user: Any) -> bool: ...

    def can_read_task_data(self, user: Any, dag_id: str) -> bool: ...


class AirflowAuthorizer:
    """The api-server's auth manager (simple, FAB, Keycloak ... whichever is configured)."""

    def readable_dag_ids(self, user: Any, dag_ids: set[str]) -> set[str]:
        from airflow.api_fastapi.app import get_auth_manager

        return set(get_auth_manager().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method="GET"))

    def can_read_connections(self, user: Any) -> bool:
        from airflow.api_fastapi.app import get_auth_manager

        return bool(get_auth_manager().is_authorized_connection(method="GET", user=user))

    def can_read_task_data(self, user: Any, dag_id: str) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        return bool(
            get_auth_manager().is_authorized_dag(
                method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag_id), user=user
            )
        )


def user_dependency() -> Callable[..., Any]:
    """Airflow's own dependency that authenticates a request (the one its REST API uses)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def visible(targets: Sequence[Target], user: Any, auth: Authorizer) -> list[Target]:
    """The targets, runs and rejects files ``user`` may see."""
    dag_ids = {run.dag_id for t in targets for run in t.runs if run.dag_id}
    readable = auth.readable_dag_ids(user, dag_ids) if dag_ids else set()
    connections = auth.can_read_connections(user)
    shown = []
    for target in targets:
        runs = [run for run in target.runs if (run.dag_id in readable if run.dag_id else connections)]
        if not runs and (target.runs or not connections):
            continue
        kept = {id(run) for run in runs}
        files = [f for f in target.rejects if (id(f.run) in kept if f.run else connections)]
        shown.append(dataclasses.replace(target, runs=runs, rejects=files))
    if connections:
        return shown
    # Without the right to read connections, the stores are numbered, not named.
    redacted: dict[int, Store] = {}
    for target in shown:
        if id(target.store) not in redacted:
            redacted[id(target.store)] = dataclasses.replace(
                target.store, connections=[], scopes={}, label_override=f"#{len(redacted) + 1}"
            )
    return [dataclasses.replace(t, store=redacted[id(t.store)]) for t in shown]


def create_app(
    *,
    stores: Callable[[], list[Store]] | None = None,
    authorizer: Authorizer | None = None,
) -> FastAPI:
    """The page's app. ``stores`` lists the state stores (default: every ``infobip`` connection's
    ``state_uri`` and the default folder); ``authorizer`` asks the auth manager (default: Airflow's)."""
    get_user = user_dependency()
    list_stores = stores or discover_stores
    auth: Authorizer = authorizer or AirflowAuthorizer()
    app = FastAPI(title="Infobip syncs", docs_url=None, redoc_url=None, openapi_url=None)

    def links(request: Request) -> render.Links:
        page = str(request.scope.get("root_path") or "").rstrip("/")
        if not page.endswith(URL_PREFIX):
            page += URL_PREFIX
        return render.Links(airflow=page[: -len(URL_PREFIX)], page=page)

    def show(request: Request, user: Any, only: tuple[str, str, str] | None = None) -> HTMLResponse:
        known = list_stores()
        targets = visible(load_targets(known), user, auth)
        if only is not None:
            targets = [t for t in targets if (t.scope, t.kind, t.folder) == only]
            if not targets:
                raise HTTPException(status_code=404, detail="No such list, tag or broadcast")
        if only is not None or not auth.can_read_connections(user):
            known = list({id(t.store): t.store for t in targets}.values())
        html = render.page(known, targets, links(request), single=only is not None)
        return HTMLResponse(html, headers=HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: Any = Depends(get_user)) -> HTMLResponse:  # noqa: B008
        return show(request, user)

    @app.get("/targets/{scope}/{kind}/{folder}", response_class=HTMLResponse)
    def one_target(
        request: Request,
        scope: str,
        kind: str,
        folder: str,
        user: Any = Depends(get_user),  # noqa: B008
    ) -> HTMLResponse:
        """One list, tag or broadcast (in whichever store holds it), its runs unfolded."""
        return show(request, user, (scope, kind, folder))

    @app.get("/rejects/{store_id}/{scope}/{kind}/{folder}/{name}")
    def rejects(
        store_id: str,
        scope: str,
        kind: str,
        folder: str,
        name: str,
        user: Any = Depends(get_user),  # noqa: B008
    ) -> Response:
        missing = HTTPException(status_code=404, detail="No such rejects file")
        if not all(SAFE_SEGMENT.match(p) for p in (store_id, scope, kind, folder, name)):
            raise missing
        if not name.endswith(".csv"):
            raise missing
        store = next((s for s in list_stores() if s.id == store_id), None)
        target = find_target(store, scope, kind, folder) if store else None
        file = next((f for f in target.rejects if f.name == name), None) if target else None
        if target is None or file is None:
            raise missing
        if file.run is not None and file.run.dag_id:
            allowed = auth.can_read_task_data(user, file.run.dag_id)
        else:
            allowed = auth.can_read_connections(user)
        if not allowed:
            raise HTTPException(status_code=403, detail="You may not read the data of this run")
        path = target.root / "rejects" / name

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while block := fh.read(1 << 16):
                    yield block

        return StreamingResponse(
            chunks(),
            media_type="text/csv; charset=utf-8",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.get("/page.js")
    def script() -> Response:
        return Response(render.SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})

    @app.get("/icon.svg")
    def icon() -> Response:
        return Response(render.ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    return app
