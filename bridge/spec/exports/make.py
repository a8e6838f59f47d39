"""The Make custom app, laid out as Make's Apps SDK (VS Code extension) keeps one locally.

`makecomapp.json` lists the components and their IML JSON files: `base.iml.json` (base URL and
token from the connection, error types per status, log sanitising), the connection (URL and
token parameters, verified by `GET /v1/me`), one module per action and search, a polling
"watch" trigger (date cursor `data.lastDate` sent as `since`, newest first, with an epoch for
"Choose where to start"), an instant trigger on an attached webhook (attach subscribes through
`/v1/hooks`, detach unsubscribes), and one RPC per dropdown source (pages from 1 until a short
page). Make deactivates a scenario on InvalidAccessTokenError, so only 401 maps to it.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.spec.exports.common import (
    GENERATED,
    Field,
    Files,
    dropdown,
    fill,
    json_file,
    label,
    user_inputs,
    user_params,
)

CONNECTION = "zappwayBridge"
TYPES = {"string": "text", "integer": "number", "number": "number", "boolean": "boolean"}
# Make's error types per bridge status: only a confirmed bad credential deactivates a scenario.
ERROR_TYPES = {
    "400": "DataError",
    "401": "InvalidAccessTokenError",
    "402": "RuntimeError",
    "403": "RuntimeError",
    "404": "RuntimeError",
    "409": "RateLimitError",
    "413": "DataError",
    "422": "DataError",
    "429": "RateLimitError",
    "502": "ConnectionError",
    "503": "ConnectionError",
    "504": "ConnectionError",
}
MESSAGE = "[{{statusCode}}] {{ifempty(body.error.message, 'The bridge answered ' + statusCode)}}"


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def render(manifest: dict[str, Any]) -> Files:
    """Every file of the Make app, from the neutral description."""
    files: Files = {"base.iml.json": _base(), "README.md": _readme(manifest)}
    components: dict[str, dict[str, Any]] = {
        "connection": {},
        "webhook": {},
        "module": {},
        "rpc": {},
        "function": {},
    }
    files.update(_connection(manifest, components))
    for source in manifest["dropdowns"]:
        files.update(_rpc(source, components))
    for action in manifest["actions"]:
        files.update(_action(action, components))
    for trigger in manifest["triggers"]:
        files.update(_watch(trigger, components))
        files.update(_instant(trigger, components))
    files["makecomapp.json"] = json_file(
        {
            "fileVersion": 1,
            "generalCodeFiles": {
                "base": "base.iml.json",
                "common": None,
                "readme": "README.md",
                "groups": None,
            },
            "components": components,
            "origins": [],
        }
    )
    return dict(sorted(files.items()))


def _base() -> str:
    errors: dict[str, Any] = {"message": MESSAGE, "type": "RuntimeError"}
    for status, kind in ERROR_TYPES.items():
        message = MESSAGE
        if kind == "RateLimitError":
            message += " (Make runs the scenario again later)"
        errors[status] = {"message": message, "type": kind}
    return json_file(
        {
            "baseUrl": "{{connection.baseUrl}}",
            "headers": {
                "Authorization": "Bearer {{connection.token}}",
                "Accept": "application/json",
            },
            "response": {"error": errors},
            "log": {"sanitize": ["request.headers.authorization"]},
        }
    )


def _connection(manifest: dict[str, Any], components: dict[str, dict[str, Any]]) -> Files:
    test = manifest["authentication"]["test"]
    folder = f"connections/{CONNECTION}"
    components["connection"][CONNECTION] = {
        "label": "ZappWay Bridge",
        "connectionType": "basic",
        "codeFiles": {
            "communication": f"{folder}/communication.iml.json",
            "params": f"{folder}/parameters.iml.json",
            "common": None,
        },
    }
    parameters = [
        {
            "name": "baseUrl",
            "type": "url",
            "label": "Bridge URL",
            "help": "The address of your ZappWay Bridge, e.g. `https://bridge.example.com`.",
            "required": True,
        },
        {
            "name": "token",
            "type": "password",
            "label": "Connection token",
            "help": "The `zwb_...` token the bridge gave when the connection was created.",
            "required": True,
        },
    ]
    communication = {
        "url": "{{parameters.baseUrl}}" + test["path"],
        "method": test["method"],
        "headers": {"Authorization": "Bearer {{parameters.token}}", "Accept": "application/json"},
        "response": {
            "metadata": {
                "type": "text",
                "value": "{{ifempty(body.label, body.organization.name)}}",
            },
            "uid": "{{body.organization.id}}",
            "error": {"message": MESSAGE},
        },
        "log": {"sanitize": ["request.headers.authorization"]},
    }
    return {
        f"{folder}/parameters.iml.json": json_file(parameters),
        f"{folder}/communication.iml.json": json_file(communication),
    }


def _rpc_name(source: dict[str, Any]) -> str:
    return camel(f"list_{source['key']}")


def _rpc(source: dict[str, Any], components: dict[str, dict[str, Any]]) -> Files:
    name = _rpc_name(source)
    paging = source["paging"]
    folder = f"rpcs/{name}"
    components["rpc"][name] = {
        "label": f"List {source['noun']}s",
        "connection": CONNECTION,
        "codeFiles": {"communication": f"{folder}/communication.iml.json", "params": None},
    }
    size = paging["default_limit"]
    communication = {
        "url": source["path"],
        "method": "GET",
        "qs": {paging["limit_param"]: size},
        "response": {
            "iterate": "{{body}}",
            "output": {"label": f"{{{{item.{source['label']}}}}}",
                       "value": f"{{{{item.{source['value']}}}}}"},
            "limit": paging["max_limit"],
        },
        # Make's pagination.page counts from 1, as the bridge's pages do; a short page ends it.
        "pagination": {
            "qs": {paging["page_param"]: "{{pagination.page}}"},
            "condition": f"{{{{length(body) == {size}}}}}",
        },
    }  # fmt: skip
    return {f"{folder}/communication.iml.json": json_file(communication)}


def _parameters(fields: list[Field], manifest_dropdowns: set[str]) -> list[dict[str, Any]]:
    """Make parameters: collections for objects, arrays with a spec, selects for dropdowns."""
    out: list[dict[str, Any]] = []
    for field in fields:
        item: dict[str, Any] = {"name": field["key"], "label": label(field)}
        if field["type"] == "object" and field.get("children"):
            item.update(type="collection", spec=_parameters(field["children"], manifest_dropdowns))
        elif field["type"] == "object":
            item["type"] = "any"
        elif field["type"] == "array" and field.get("children"):
            item.update(type="array", spec=_parameters(field["children"], manifest_dropdowns))
        elif field["type"] == "array":
            item.update(type="array", spec={"type": "text"})
        elif field.get("dynamic") in manifest_dropdowns:
            item.update(type="select", options=f"rpc://{camel('list_' + field['dynamic'])}",
                        mode="edit")  # fmt: skip
        elif field.get("choices"):
            item.update(type="select", options=[{"label": c, "value": c} for c in field["choices"]])
        else:
            item["type"] = TYPES[field["type"]]
        item["required"] = bool(field["required"])
        if field.get("help_text"):
            item["help"] = field["help_text"]
        out.append(item)
    return out


def _interface(fields: list[Field]) -> list[dict[str, Any]]:
    """Make's output description: collections and arrays carry their children's spec."""
    out: list[dict[str, Any]] = []
    for field in fields:
        item: dict[str, Any] = {"name": field["key"], "label": label(field)}
        if field["type"] == "object":
            item["type"] = "collection"
            if field.get("children"):
                item["spec"] = _interface(field["children"])
        elif field["type"] == "array":
            item["type"] = "array"
            if field.get("children"):
                item["spec"] = _interface(field["children"])
        else:
            item["type"] = TYPES[field["type"]]
        out.append(item)
    return out


def _body(fields: list[Field]) -> dict[str, str]:
    return {field["key"]: f"{{{{parameters.{field['key']}}}}}" for field in fields}


def _module(
    name: str, meta: dict[str, Any], components: dict[str, dict[str, Any]], files: dict[str, Any]
) -> Files:
    folder = f"modules/{name}"
    kinds = {
        "communication": "communication",
        "mappableParams": "mappable-params",
        "staticParams": "static-params",
        "interface": "interface",
        "samples": "samples",
    }
    code_files = {key: f"{folder}/{kinds[key]}.iml.json" for key in kinds if key in files}
    components["module"][name] = {**meta, "connection": CONNECTION, "codeFiles": code_files}
    return {
        f"{folder}/{kinds[key]}.iml.json": json_file(files[key]) for key in kinds if key in files
    }


def _action(action: dict[str, Any], components: dict[str, dict[str, Any]]) -> Files:
    searching = action["kind"] == "search"
    fields = user_inputs(action)
    sources = {"agents", "datastores"}
    response: dict[str, Any] = {"output": "{{body}}"}
    if searching:
        response = {"iterate": "{{body}}", "output": "{{item}}"}
    communication = {
        "url": action["path"],
        "method": action["method"],
        "headers": {"Content-Type": "application/json"},
        "body": _body(fields),
        "response": response,
    }
    sample = action["sample"][0] if searching else action["sample"]
    meta = {
        "label": action["label"],
        "description": action["description"],
        "moduleType": "search" if searching else "action",
    }
    if not searching:
        meta["actionCrud"] = "delete" if action["key"].startswith("delete") else "update"
    return _module(
        camel(action["key"]),
        meta,
        components,
        {
            "communication": communication,
            "mappableParams": _parameters(fields, sources),
            "interface": _interface(action["output_fields"]),
            "samples": sample,
        },
    )


def _watch(trigger: dict[str, Any], components: dict[str, dict[str, Any]]) -> Files:
    polling = trigger["polling"]
    params = {p["key"]: f"{{{{parameters.{p['key']}}}}}" for p in user_params(trigger)}
    since = "{{if(data.lastDate, formatDate(data.lastDate, 'YYYY-MM-DDTHH:mm:ss.SSS[Z]'), '')}}"
    communication = {
        "url": polling["path"],
        "method": polling["method"],
        "qs": {**params, "limit": "{{ifempty(parameters.limit, 50)}}", "since": since},
        "response": {
            "iterate": "{{body}}",
            "output": "{{item}}",
            # The bridge answers newest first; Make keeps the newest date it saw as data.lastDate.
            "trigger": {
                "type": "date",
                "order": "desc",
                "id": f"{{{{item.{polling['dedupe_key']}}}}}",
                "date": "{{item.created_at}}",
            },
        },
        # "Choose where to start": the recent items to pick a starting point from.
        "epoch": {
            "url": polling["path"],
            "method": polling["method"],
            "qs": {**params, "limit": 50},
            "response": {
                "iterate": "{{body}}",
                "output": {
                    "label": "{{ifempty(item.first_message, item.id)}} ({{item.created_at}})",
                    "date": "{{item.created_at}}",
                },
            },
        },
    }
    limit = {
        "name": "limit",
        "type": "uinteger",
        "label": "Maximum number of results",
        "help": "Conversations returned per run (1 to 100).",
        "default": 50,
        "required": False,
    }
    return _module(
        camel(f"watch_{trigger['key']}"),
        {"label": f"Watch {trigger['label']}s", "description": trigger["description"],
         "moduleType": "trigger"},
        components,
        {
            "communication": communication,
            "staticParams": [*_parameters(user_params(trigger), {"agents"}), limit],
            "interface": _interface(trigger["output_fields"]),
            "samples": trigger["sample"][0],
        },
    )  # fmt: skip


def _instant(trigger: dict[str, Any], components: dict[str, dict[str, Any]]) -> Files:
    hook = trigger["hook"]
    webhook = camel(trigger["key"])
    folder = f"webhooks/{webhook}"
    components["webhook"][webhook] = {
        "label": trigger["label"],
        "webhookType": "web",
        "connection": CONNECTION,
        "codeFiles": {
            "communication": f"{folder}/communication.iml.json",
            "params": f"{folder}/parameters.iml.json",
            "attach": f"{folder}/attach.iml.json",
            "detach": f"{folder}/detach.iml.json",
        },
    }
    body = {hook["subscribe"]["target_field"]: "{{webhook.url}}", "event": hook["event"]}
    body.update({p["key"]: f"{{{{parameters.{p['key']}}}}}" for p in user_params(trigger)})
    attach = {
        "url": hook["subscribe"]["path"],
        "method": hook["subscribe"]["method"],
        "headers": {"Content-Type": "application/json"},
        "body": body,
        "response": {"data": {"externalHookId": "{{body.id}}"}},
    }
    detach = {
        "url": re.sub(r"\{id\}", "{{webhook.externalHookId}}", hook["unsubscribe"]["path"]),
        "method": hook["unsubscribe"]["method"],
    }
    files = {
        f"{folder}/parameters.iml.json": json_file(_parameters(user_params(trigger), {"agents"})),
        f"{folder}/attach.iml.json": json_file(attach),
        f"{folder}/detach.iml.json": json_file(detach),
        # One delivery is one conversation; the bridge signs it, but IML cannot check a
        # Standard Webhooks signature (its key is binary), so the URL's secrecy is the guard.
        f"{folder}/communication.iml.json": json_file({"output": "{{body}}"}),
    }
    files.update(
        _module(
            camel(f"watch_{trigger['key']}_instant"),
            {"label": f"Watch {trigger['label']}s (Instant)",
             "description": trigger["description"], "moduleType": "instant_trigger",
             "webhook": webhook},
            components,
            {
                "communication": {"output": "{{body}}"},
                "interface": _interface(trigger["output_fields"]),
                "samples": trigger["sample"][0],
            },
        )
    )  # fmt: skip
    return files


def _readme(manifest: dict[str, Any]) -> str:
    paging = dropdown(manifest, "agents")["paging"]
    return fill(
        """\
# ZappWay Bridge for Make

@@GENERATED@@ Import it as `docs/make.md` says.

Laid out as Make's Apps SDK keeps an app locally (`makecomapp.json` and IML JSON files):
the connection (`Bridge URL` and `Connection token`, verified by `GET /v1/me`), modules for
every action and search, a polling trigger and an instant trigger for new conversations, and
RPCs for the agent and datastore dropdowns (pages from @@FIRST@@, @@SIZE@@ per page).
""",
        GENERATED=GENERATED.format(target="make"),
        FIRST=str(paging["first_page"]),
        SIZE=str(paging["default_limit"]),
    )
