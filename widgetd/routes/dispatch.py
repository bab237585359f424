"""``/models/{model_id}/...``: the route that finds the model a path names and hands the request to what
answers it: a task route, an OpenAI route or an admin action."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.params import FromPath

from widgetd.errors import Forbidden, MethodNotAllowed, NotFound
from widgetd.routes import admin, admin_open, inference, methods_of, model_at, openai, state_of


@post("/models/{model_path:path}", status_code=200)
async def predict_model(request: Request, model_path: FromPath[str]) -> Response:
    path = model_path.strip("/")
    action = next((name for name in ("load", "reload") if path.endswith("/" + name)), None)
    if action and path not in state_of(request).model_ids():
        if not admin_open(request):
            raise Forbidden(f"{action}: the admin API is off; start the server with --admin-key to manage models")
        if action == "load":
            return await admin.load(request, path.removesuffix("/load"))
        if path.removesuffix("/reload") not in state_of(request).model_ids():
            raise admin.not_loaded(request, path.removesuffix("/reload"))
    model, rest = await model_at(request, model_path)
    if rest == "reload" and admin_open(request):
        return await admin.reload_model(request, model)
    if rest in openai.MODEL_ROUTES:
        return await openai.MODEL_ROUTES[rest](request, model)
    allowed = methods_of(rest, admin_open(request))
    if allowed is None:
        raise NotFound(f"no route /models/{model.model_id}/{rest}; use /models/{model.model_id}/pipeline/<task>")
    if "POST" not in allowed:
        raise MethodNotAllowed(f"/models/{model.model_id}/{rest} answers {allowed} requests", allow=allowed)
    return await inference.answer(request, model, rest.removeprefix("pipeline/") or None)


ROUTES = [predict_model]
