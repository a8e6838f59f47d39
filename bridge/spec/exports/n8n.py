"""The n8n community node package `n8n-nodes-zappway-bridge`, shipped built (plain CommonJS).

`dist/credentials/ZappWayBridgeApi.credentials.js` (bridge URL and token, `authenticate` adds
the bearer header, `test` calls `GET /v1/me`); `dist/nodes/ZappWayBridge/` a declarative node
(resource by dropdown source, an operation per action and search, required fields at the top,
optional ones under "Additional Fields" so nothing unset is sent, `loadOptions` paging through
the dropdown sources from page 1); `dist/nodes/ZappWayBridgeTrigger/` a webhook trigger that
subscribes through `/v1/hooks` on activation, unsubscribes on deactivation, and verifies the
Standard Webhooks signature of every delivery with the secret the subscription returned.
No dependencies: `n8n-workflow` is the host's, and verification uses Node's `crypto`.
"""

from __future__ import annotations

from typing import Any

from bridge.spec.exports.common import (
    GENERATED,
    STANDARD_WEBHOOKS_JS,
    Field,
    Files,
    dropdown,
    fill,
    js,
    json_file,
    label,
    user_params,
)

PACKAGE = "n8n-nodes-zappway-bridge"
CREDENTIAL = "zappWayBridgeApi"
NODE, TRIGGER = "zappWayBridge", "zappWayBridgeTrigger"
NOTE = "// " + GENERATED.format(target="n8n")
TYPES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean"}
DEFAULTS = {"string": "", "number": 0, "boolean": False, "options": "", "json": "{}"}
BASE_URL = "={{String($credentials.baseUrl).replace(/\\/+$/, '')}}"
ICON = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="12" \
fill="#2f6fed"/><path d="M16 18h32L24 46h24" fill="none" stroke="#fff" stroke-width="6" \
stroke-linecap="round" stroke-linejoin="round"/></svg>
"""


def render(manifest: dict[str, Any]) -> Files:
    """Every file of the n8n package, from the neutral description."""
    return {
        "package.json": _package(manifest),
        "README.md": _readme(manifest),
        "index.js": f"'use strict';\n{NOTE}\nmodule.exports = {{}};\n",
        "dist/credentials/ZappWayBridgeApi.credentials.js": _credential(manifest),
        "dist/nodes/shared.js": _shared(manifest),
        "dist/nodes/ZappWayBridge/ZappWayBridge.node.js": _node(manifest),
        "dist/nodes/ZappWayBridge/ZappWayBridge.node.json": _codex("Development"),
        "dist/nodes/ZappWayBridge/zappway.svg": ICON,
        "dist/nodes/ZappWayBridgeTrigger/ZappWayBridgeTrigger.node.js": _trigger(manifest),
        "dist/nodes/ZappWayBridgeTrigger/ZappWayBridgeTrigger.node.json": _codex("Development"),
        "dist/nodes/ZappWayBridgeTrigger/zappway.svg": ICON,
    }


def _package(manifest: dict[str, Any]) -> str:
    return json_file(
        {
            "name": PACKAGE,
            "version": manifest["version"],
            "description": f"{manifest['description']} {GENERATED.format(target='n8n')}",
            "keywords": ["n8n-community-node-package", "zappway", "ai-agent"],
            "license": "UNLICENSED",
            "main": "index.js",
            "files": ["index.js", "dist"],
            "engines": {"node": ">=20"},
            "n8n": {
                "n8nNodesApiVersion": 1,
                "credentials": ["dist/credentials/ZappWayBridgeApi.credentials.js"],
                "nodes": [
                    "dist/nodes/ZappWayBridge/ZappWayBridge.node.js",
                    "dist/nodes/ZappWayBridgeTrigger/ZappWayBridgeTrigger.node.js",
                ],
            },
            "peerDependencies": {"n8n-workflow": "*"},
        }
    )


def _codex(category: str) -> str:
    return json_file(
        {"node": f"{PACKAGE}", "nodeVersion": "1.0", "codexVersion": "1.0",
         "categories": [category]}
    )  # fmt: skip


def _credential(manifest: dict[str, Any]) -> str:
    test = manifest["authentication"]["test"]
    properties = [
        {"displayName": "Bridge URL", "name": "baseUrl", "type": "string", "default": "",
         "placeholder": "https://bridge.example.com", "required": True,
         "description": "The address of your ZappWay Bridge"},
        {"displayName": "Connection Token", "name": "token", "type": "string",
         "typeOptions": {"password": True}, "default": "", "required": True,
         "description": "The zwb_... token the bridge gave when the connection was created"},
    ]  # fmt: skip
    return fill(
        """\
'use strict';
@@NOTE@@
Object.defineProperty(exports, '__esModule', { value: true });

class ZappWayBridgeApi {
  constructor() {
    this.name = '@@CREDENTIAL@@';
    this.displayName = 'ZappWay Bridge API';
    this.documentationUrl = 'https://zappway.ai';
    this.properties = @@PROPERTIES@@;
    this.authenticate = {
      type: 'generic',
      properties: { headers: { Authorization: '=Bearer {{$credentials.token}}' } },
    };
    // The credential dialog's "Test": answered from the bridge's storage; 401 for a bad token.
    this.test = { request: { baseURL: @@BASE@@, url: '@@PATH@@', method: '@@METHOD@@' } };
  }
}
exports.ZappWayBridgeApi = ZappWayBridgeApi;
""",
        NOTE=NOTE,
        CREDENTIAL=CREDENTIAL,
        PROPERTIES=js(properties).replace("\n", "\n    "),
        BASE=js(BASE_URL),
        PATH=test["path"],
        METHOD=test["method"],
    )


def _shared(manifest: dict[str, Any]) -> str:
    paging = dropdown(manifest, "agents")["paging"]
    methods = {camel_method(d["key"]): d["path"] for d in manifest["dropdowns"]}
    lines = [f"  {name}() {{\n    return listOptions(this, '{path}');\n  }}," for name, path in
             methods.items()]  # fmt: skip
    return fill(
        """\
'use strict';
@@NOTE@@
// What both nodes share: dropdown options and Standard Webhooks verification.
@@STANDARD_WEBHOOKS@@
const CREDENTIAL = '@@CREDENTIAL@@';
const FIRST_PAGE = @@FIRST_PAGE@@; // the bridge's pages count from 1
const PAGE_SIZE = @@PAGE_SIZE@@;
const MAX_PAGES = 20;

const baseUrl = (credentials) => String(credentials.baseUrl || '').replace(/\\/+$/, '');

// Every page of a dropdown source, as n8n options; a short page is the last.
const listOptions = async (context, path) => {
  const credentials = await context.getCredentials(CREDENTIAL);
  const options = [];
  for (let page = FIRST_PAGE; page < FIRST_PAGE + MAX_PAGES; page += 1) {
    const items = await context.helpers.httpRequestWithAuthentication.call(context, CREDENTIAL, {
      method: 'GET',
      url: `${baseUrl(credentials)}${path}`,
      qs: { page, limit: PAGE_SIZE, format: 'options' },
      json: true,
    });
    options.push(...items.map((item) => ({ name: item.label, value: item.value })));
    if (items.length < PAGE_SIZE) break;
  }
  return options;
};

const loadOptions = {
@@METHODS@@
};

module.exports = { CREDENTIAL, baseUrl, header, listOptions, loadOptions, verifySignature };
""",
        NOTE=NOTE,
        STANDARD_WEBHOOKS=STANDARD_WEBHOOKS_JS,
        CREDENTIAL=CREDENTIAL,
        FIRST_PAGE=str(paging["first_page"]),
        PAGE_SIZE=str(paging["default_limit"]),
        METHODS="\n".join(lines),
    )


def camel_method(source: str) -> str:
    return "get" + source[:1].upper() + source[1:]


def _resource_of(action: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """An action belongs to the dropdown source of its first required dropdown field."""
    key = next(f["dynamic"] for f in action["input_fields"] if f.get("dynamic"))
    return dropdown(manifest, key)


def _node(manifest: dict[str, Any]) -> str:
    resources: dict[str, dict[str, Any]] = {}
    for action in manifest["actions"]:
        source = _resource_of(action, manifest)
        resources.setdefault(source["noun"].lower(), {"noun": source["noun"], "actions": []})
        resources[source["noun"].lower()]["actions"].append(action)
    first = next(iter(resources))
    properties: list[dict[str, Any]] = [
        {
            "displayName": "Resource",
            "name": "resource",
            "type": "options",
            "noDataExpression": True,
            "options": [{"name": r["noun"], "value": key} for key, r in resources.items()],
            "default": first,
        }
    ]
    for key, resource in resources.items():
        properties.append(
            {
                "displayName": "Operation",
                "name": "operation",
                "type": "options",
                "noDataExpression": True,
                "displayOptions": {"show": {"resource": [key]}},
                "options": [_operation(a) for a in resource["actions"]],
                "default": resource["actions"][0]["key"],
            }
        )
        for action in resource["actions"]:
            properties += _fields(action, key)
    description = {
        "displayName": "ZappWay Bridge",
        "name": NODE,
        "icon": "file:zappway.svg",
        "group": ["transform"],
        "version": 1,
        "subtitle": '={{$parameter["operation"]}}',
        "description": manifest["description"],
        "defaults": {"name": "ZappWay Bridge"},
        "inputs": ["main"],
        "outputs": ["main"],
        "usableAsTool": True,
        "credentials": [{"name": CREDENTIAL, "required": True}],
        "requestDefaults": {
            "baseURL": BASE_URL,
            "headers": {"Accept": "application/json", "Content-Type": "application/json"},
        },
        "properties": properties,
    }
    return fill(
        """\
'use strict';
@@NOTE@@
// A declarative node: n8n builds each request from the `routing` of the chosen operation.
Object.defineProperty(exports, '__esModule', { value: true });
const { loadOptions } = require('../shared');

class ZappWayBridge {
  constructor() {
    this.description = @@DESCRIPTION@@;
    this.methods = { loadOptions };
  }
}
exports.ZappWayBridge = ZappWayBridge;
""",
        NOTE=NOTE,
        DESCRIPTION=js(description).replace("\n", "\n    "),
    )


def _operation(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": action["label"],
        "value": action["key"],
        "action": action["label"],
        "description": action["description"],
        "routing": {"request": {"method": action["method"], "url": action["path"]}},
    }


def _property(field: Field, path: str) -> dict[str, Any]:
    """One n8n property sending `field` to the body at `path` (objects and arrays as JSON)."""
    item: dict[str, Any] = {"displayName": label(field), "name": field["key"]}
    send: dict[str, Any] = {"type": "body", "property": path}
    if field.get("dynamic"):
        item.update(type="options", typeOptions={
            "loadOptionsMethod": camel_method(field["dynamic"])})  # fmt: skip
    elif field.get("choices"):
        item.update(type="options", options=[{"name": c, "value": c} for c in field["choices"]])
    elif field["type"] in ("object", "array"):
        item["type"] = "json"
        send["value"] = "={{typeof $value === 'string' ? JSON.parse($value) : $value}}"
    else:
        item["type"] = TYPES[field["type"]]
    item["default"] = "[]" if field["type"] == "array" else DEFAULTS[item["type"]]
    if field.get("help_text"):
        item["description"] = field["help_text"]
    if field["key"] == "callback_url":
        item["description"] = (
            "Answer later: the bridge POSTs the job's outcome here. With a Wait node "
            "(Resume: On Webhook Call) use {{ $execution.resumeUrl }}."
        )
    item["routing"] = {"send": send}
    return item


def _fields(action: dict[str, Any], resource: str) -> list[dict[str, Any]]:
    """Required fields at the top; optional ones (and optional objects' fields) in a collection."""
    show = {"show": {"resource": [resource], "operation": [action["key"]]}}
    top: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for field in action["input_fields"]:
        if field["type"] == "object" and field.get("children"):
            for child in field["children"]:
                made = _property(
                    {**child, "key": f"{field['key']}_{child['key']}"},
                    f"{field['key']}.{child['key']}",
                )
                made["displayName"] = f"{label(field)}: {label(child)}"
                extra.append(made)
        elif field["required"]:
            top.append({**_property(field, field["key"]), "required": True, "displayOptions": show})
        else:
            extra.append(_property(field, field["key"]))
    if extra:
        top.append(
            {
                "displayName": "Additional Fields",
                "name": "additionalFields",
                "type": "collection",
                "placeholder": "Add Field",
                "default": {},
                "displayOptions": show,
                "options": sorted(extra, key=lambda p: p["displayName"]),
            }
        )
    return top


def _trigger(manifest: dict[str, Any]) -> str:
    trigger = manifest["triggers"][0]
    hook = trigger["hook"]
    params = user_params(trigger)
    properties = [
        {
            "displayName": "Event",
            "name": "event",
            "type": "options",
            "options": [{"name": t["label"], "value": t["hook"]["event"],
                         "description": t["description"]} for t in manifest["triggers"]],
            "default": hook["event"],
        },
        *[{**_property(p, p["key"]), "required": bool(p["required"])} for p in params],
    ]  # fmt: skip
    for item in properties:
        item.pop("routing", None)
    description = {
        "displayName": "ZappWay Bridge Trigger",
        "name": TRIGGER,
        "icon": "file:zappway.svg",
        "group": ["trigger"],
        "version": 1,
        "subtitle": '={{$parameter["event"]}}',
        "description": "Starts the workflow when the bridge delivers an event (signed).",
        "defaults": {"name": "ZappWay Bridge Trigger"},
        "inputs": [],
        "outputs": ["main"],
        "credentials": [{"name": CREDENTIAL, "required": True}],
        "webhooks": [
            {"name": "default", "httpMethod": "POST", "responseMode": "onReceived",
             "path": "webhook"}
        ],
        "properties": properties,
    }  # fmt: skip
    inputs = ", ".join(f"{p['key']}: this.getNodeParameter('{p['key']}')" for p in params)
    return fill(
        """\
'use strict';
@@NOTE@@
// On activation it subscribes its webhook URL (POST @@SUB_PATH@@) and keeps the hook's id and
// signing secret in the workflow's static data; on deactivation it unsubscribes. Each delivery
// is verified (Standard Webhooks) before it starts the workflow; others get 401.
Object.defineProperty(exports, '__esModule', { value: true });
const { CREDENTIAL, baseUrl, loadOptions, verifySignature } = require('../shared');

const bridge = async (context, method, path, body) => {
  const credentials = await context.getCredentials(CREDENTIAL);
  return context.helpers.httpRequestWithAuthentication.call(context, CREDENTIAL, {
    method,
    url: `${baseUrl(credentials)}${path}`,
    body,
    json: true,
  });
};

const hookPath = (id) => `@@SHOW_PATH@@/${encodeURIComponent(id)}`;

const statusOf = (error) =>
  Number(error.httpCode || (error.response && error.response.status) || error.statusCode || 0);

class ZappWayBridgeTrigger {
  constructor() {
    this.description = @@DESCRIPTION@@;
    this.methods = { loadOptions };
    this.webhookMethods = {
      default: {
        async checkExists() {
          const data = this.getWorkflowStaticData('node');
          if (!data.hookId) return false;
          try {
            const hook = await bridge(this, 'GET', hookPath(data.hookId));
            if (hook.state === 'active' && hook.target_url === this.getNodeWebhookUrl('default')) {
              return true;
            }
          } catch (error) {
            if (statusOf(error) !== 404) throw error;
          }
          delete data.hookId;
          delete data.secret;
          return false;
        },
        async create() {
          const data = this.getWorkflowStaticData('node');
          const created = await bridge(this, '@@SUB_METHOD@@', '@@SUB_PATH@@', {
            @@TARGET@@: this.getNodeWebhookUrl('default'),
            event: this.getNodeParameter('event'),
            @@INPUTS@@,
          });
          data.hookId = created.id;
          data.secret = created.secret;
          return true;
        },
        async delete() {
          const data = this.getWorkflowStaticData('node');
          if (data.hookId) {
            try {
              await bridge(this, '@@UNSUB_METHOD@@', hookPath(data.hookId));
            } catch (error) {
              if (statusOf(error) !== 404) return false;
            }
          }
          delete data.hookId;
          delete data.secret;
          return true;
        },
      },
    };
  }

  async webhook() {
    const request = this.getRequestObject();
    const data = this.getWorkflowStaticData('node');
    const raw = request.rawBody ? request.rawBody.toString('utf8') : JSON.stringify(request.body);
    try {
      verifySignature(data.secret, request.headers, raw);
    } catch (error) {
      const refusal = { error: { code: 'bad_signature', message: error.message } };
      this.getResponseObject().status(401).json(refusal);
      return { noWebhookResponse: true };
    }
    return { workflowData: [this.helpers.returnJsonArray([request.body])] };
  }
}
exports.ZappWayBridgeTrigger = ZappWayBridgeTrigger;
""",
        NOTE=NOTE,
        DESCRIPTION=js(description).replace("\n", "\n    "),
        SUB_METHOD=hook["subscribe"]["method"],
        SUB_PATH=hook["subscribe"]["path"],
        SHOW_PATH=hook["unsubscribe"]["path"].removesuffix("/{id}"),
        UNSUB_METHOD=hook["unsubscribe"]["method"],
        TARGET=hook["subscribe"]["target_field"],
        INPUTS=inputs,
    )


def _readme(manifest: dict[str, Any]) -> str:
    operations = "\n".join(f"- {a['label']}: {a['description']}" for a in manifest["actions"])
    return fill(
        """\
# @@PACKAGE@@

@@GENERATED@@ Install it as `docs/n8n.md` says.

An n8n community node package, shipped built (plain JavaScript in `dist/`, no dependencies):

- credential **ZappWay Bridge API**: Bridge URL and Connection Token, tested with `GET /v1/me`;
- node **ZappWay Bridge**:
@@OPERATIONS@@
- node **ZappWay Bridge Trigger**: new conversations, pushed by the bridge (REST hook made on
  activation, removed on deactivation; every delivery's signature is verified).
""",
        PACKAGE=PACKAGE,
        GENERATED=GENERATED.format(target="n8n"),
        OPERATIONS="\n".join("  " + line for line in operations.splitlines()),
    )
