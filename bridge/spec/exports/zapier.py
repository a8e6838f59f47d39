"""The Zapier Platform CLI app (zapier-platform-core 19.1.0, pinned exactly).

Layout: `index.js` (the registry of operations), `authentication.js` (custom auth: the bridge
URL and a connection token, test `GET /v1/me`), `lib/bridge.js` (the one place requests and
errors are handled), and one file per operation under `triggers/`, `creates/`, `searches/`.
Errors: 401 raises `ExpiredAuthError` (no refresh: the user reconnects), 429 (and a 409 with
Retry-After) a `ThrottledError` with the bridge's Retry-After, other 4xx a `HaltedError` with the
bridge's message, 5xx a plain `Error` (replayable). Dropdowns are hidden polling triggers whose
page is `bundle.meta.page` (from 0) plus the bridge's first page (1).
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
    sample_item,
    user_inputs,
    user_params,
)

CORE_VERSION = "19.1.0"
TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
NOTE = "// " + GENERATED.format(target="zapier")


def render(manifest: dict[str, Any]) -> Files:
    """Every file of the Zapier app, from the neutral description."""
    files: Files = {
        "package.json": _package(manifest),
        "lib/bridge.js": _runtime(manifest),
        "authentication.js": _authentication(manifest),
    }
    triggers: list[str] = []
    creates: list[str] = []
    searches: list[str] = []
    for source in manifest["dropdowns"]:
        key = f"list_{source['key']}"
        files[f"triggers/{key}.js"] = _dropdown_trigger(key, source)
        triggers.append(key)
    for trigger in manifest["triggers"]:
        files[f"triggers/{trigger['key']}.js"] = _polling_trigger(trigger)
        files[f"triggers/{trigger['key']}_instant.js"] = _hook_trigger(trigger)
        triggers += [trigger["key"], f"{trigger['key']}_instant"]
    for action in manifest["actions"]:
        folder = "searches" if action["kind"] == "search" else "creates"
        files[f"{folder}/{action['key']}.js"] = _action(action)
        (searches if folder == "searches" else creates).append(action["key"])
    files["index.js"] = _index(triggers, creates, searches)
    files["README.md"] = _readme(manifest)
    return files


def _package(manifest: dict[str, Any]) -> str:
    return json_file(
        {
            "name": "zappway-bridge-zapier",
            "version": manifest["version"],
            "description": f"{manifest['name']} for Zapier. {GENERATED.format(target='zapier')}",
            "main": "index.js",
            "private": True,
            "license": "UNLICENSED",
            "engines": {"node": ">=18"},
            "dependencies": {"zapier-platform-core": CORE_VERSION},
        }
    )


def _index(triggers: list[str], creates: list[str], searches: list[str]) -> str:
    def block(folder: str, keys: list[str]) -> str:
        lines = [f"    [{k}.key]: {k}," for k in keys]
        return "{\n" + "\n".join(lines) + "\n  }"

    requires = [
        f"const {key} = require('./{folder}/{key}');"
        for folder, keys in (("triggers", triggers), ("creates", creates), ("searches", searches))
        for key in keys
    ]
    return fill(
        """\
'use strict';
@@NOTE@@
const { version } = require('./package.json');
const { version: platformVersion } = require('zapier-platform-core');

const authentication = require('./authentication');
const { addAuth, handleErrors } = require('./lib/bridge');
@@REQUIRES@@

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest: [addAuth],
  afterResponse: [handleErrors],
  triggers: @@TRIGGERS@@,
  creates: @@CREATES@@,
  searches: @@SEARCHES@@,
};
""",
        NOTE=NOTE,
        REQUIRES="\n".join(requires),
        TRIGGERS=block("triggers", triggers),
        CREATES=block("creates", creates),
        SEARCHES=block("searches", searches),
    )


def _runtime(manifest: dict[str, Any]) -> str:
    paging = manifest["dropdowns"][0]["paging"]
    return fill(
        """\
'use strict';
@@NOTE@@
// Requests, errors, bodies and signatures: every operation goes through these helpers.
@@STANDARD_WEBHOOKS@@
// The bridge's dropdown pages count from FIRST_PAGE; Zapier's bundle.meta.page from 0.
const FIRST_PAGE = @@FIRST_PAGE@@;
const PAGE_SIZE = @@PAGE_SIZE@@;

const baseUrl = (bundle) =>
  String((bundle.authData || {}).base_url || '').trim().replace(/\\/+$/, '');

const addAuth = (request, z, bundle) => {
  const token = String((bundle.authData || {}).token || '').trim();
  request.headers = { Accept: 'application/json', ...(request.headers || {}) };
  if (token) request.headers.Authorization = `Bearer ${token}`;
  // 429 is turned into a ThrottledError below, with the bridge's own message and Retry-After.
  request.throwForThrottlingEarly = false;
  return request;
};

const retryAfterSeconds = (value) => {
  const seconds = parseInt(value, 10);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 60;
};

// The bridge's statuses as Zapier expects them: reconnect, wait, stop, or retry later.
const raiseFor = (z, status, error, retryAfter) => {
  const message = String(error.message || `The bridge answered ${status}`).slice(0, 250);
  if (status === 401) throw new z.errors.ExpiredAuthError(message);
  if (status === 429 || (status === 409 && retryAfter)) {
    throw new z.errors.ThrottledError(message, retryAfterSeconds(retryAfter));
  }
  if (status >= 400 && status < 500) throw new z.errors.HaltedError(message);
  throw new z.errors.Error(message, error.code || 'bridge_error', status);
};

const handleErrors = (response, z) => {
  if (response.status < 400) return response;
  if (response.status === 404 && response.skipThrowForStatus) return response; // missingOk
  const error = (response.data && response.data.error) || {};
  return raiseFor(z, response.status, error, response.headers.get('retry-after'));
};

// `missingOk`: a 404 is an answer (an unsubscribe finding the hook already gone).
const call = async (z, bundle, method, path, { body, params, missingOk } = {}) => {
  const url = `${baseUrl(bundle)}${path}`;
  const response = await z.request({ url, method, body, params, skipThrowForStatus: missingOk });
  return response.data;
};

const blank = (value) => value === undefined || value === null || value === '';

const coerce = (field, value) => {
  if (field.type === 'integer' || field.type === 'number') {
    const number = Number(value);
    const numeric = typeof value === 'string' && value.trim() !== '' && Number.isFinite(number);
    return numeric ? number : value;
  }
  if (field.type === 'boolean' && typeof value === 'string') {
    return ['true', 'yes', '1'].includes(value.toLowerCase());
  }
  return value;
};

const clean = (fields, source) => {
  const out = {};
  for (const field of fields) {
    const value = source[field.key];
    if (!blank(value)) out[field.key] = coerce(field, value);
  }
  return out;
};

// Zapier flattens objects into `parent__child` inputs and lists of objects into line items.
const buildBody = (fields, inputData) => {
  const body = {};
  for (const field of fields) {
    const value = inputData[field.key];
    if (field.type === 'object' && field.children) {
      const nested = {};
      for (const child of field.children) {
        const given = inputData[`${field.key}__${child.key}`];
        if (!blank(given)) nested[child.key] = coerce(child, given);
      }
      if (Object.keys(nested).length) body[field.key] = nested;
    } else if (field.type === 'array' && field.children) {
      const given = Array.isArray(value) ? value : [];
      const items = given.map((item) => clean(field.children, item || {}));
      const filled = items.filter((item) => Object.keys(item).length);
      if (filled.length) body[field.key] = filled;
    } else if (field.type === 'array') {
      const given = Array.isArray(value) ? value : [value];
      const items = given.filter((v) => !blank(v));
      if (items.length) body[field.key] = items;
    } else if (!blank(value)) {
      body[field.key] = coerce(field, value);
    }
  }
  return body;
};

const listDropdown = async (z, bundle, path) => {
  const page = ((bundle.meta && bundle.meta.page) || 0) + FIRST_PAGE;
  return call(z, bundle, 'GET', path, { params: { page, limit: PAGE_SIZE } });
};

// A job's callback ({job_id, action, status, result | error}) as the step's output or error.
const resumeJob = (z, payload) => {
  if (payload && payload.status === 'succeeded') return payload.result;
  const error = (payload && payload.error) || {};
  return raiseFor(z, Number(error.status) || 502, error, null);
};

module.exports = {
  addAuth,
  buildBody,
  call,
  handleErrors,
  listDropdown,
  resumeJob,
  verifySignature,
};
""",
        NOTE=NOTE,
        STANDARD_WEBHOOKS=STANDARD_WEBHOOKS_JS,
        FIRST_PAGE=str(paging["first_page"]),
        PAGE_SIZE=str(paging["default_limit"]),
    )


def _authentication(manifest: dict[str, Any]) -> str:
    test = manifest["authentication"]["test"]
    fields = [
        {
            "key": "base_url",
            "label": "Bridge URL",
            "required": True,
            "type": "string",
            "helpText": "The address of your ZappWay Bridge, e.g. `https://bridge.example.com`.",
        },
        {
            "key": "token",
            "label": "Connection Token",
            "required": True,
            "type": "password",
            "helpText": "The `zwb_...` token the bridge gave when the connection was created "
            "(`POST /v1/connections`).",
        },
    ]
    return fill(
        """\
'use strict';
@@NOTE@@
const { call } = require('./lib/bridge');

module.exports = {
  type: 'custom',
  fields: @@FIELDS@@,
  // Answered from the bridge's storage: fast, and 401 only for a bad or revoked token.
  test: (z, bundle) => call(z, bundle, '@@METHOD@@', '@@PATH@@'),
  // The test's answer: the connection's label, else its ZappWay organization (never a secret).
  connectionLabel: (z, bundle) => {
    const me = bundle.inputData || {};
    const organization = (me.organization && me.organization.name) || me.id;
    return me.label ? `${me.label} (${organization})` : organization;
  },
};
""",
        NOTE=NOTE,
        FIELDS=_indent(js(fields), 2),
        METHOD=test["method"],
        PATH=test["path"],
    )


def _dropdown_trigger(key: str, source: dict[str, Any]) -> str:
    noun = source["noun"]
    return fill(
        """\
'use strict';
@@NOTE@@
const { listDropdown } = require('../lib/bridge');

module.exports = {
  key: '@@KEY@@',
  noun: '@@NOUN@@',
  display: {
    label: 'List @@NOUN@@s',
    description: 'Feeds the @@NOUN_LOWER@@ dropdowns.',
    hidden: true,
  },
  operation: {
    canPaginate: true,
    perform: (z, bundle) => listDropdown(z, bundle, '@@PATH@@'),
    sample: { @@VALUE@@: 'clxxxxxxxxxxxxxxxxxxxxxxx', @@LABEL@@: 'Support @@NOUN@@' },
    outputFields: [
      { key: '@@VALUE@@', label: 'ID' },
      { key: '@@LABEL@@', label: 'Name' },
    ],
  },
};
""",
        NOTE=NOTE,
        KEY=key,
        NOUN=noun,
        NOUN_LOWER=noun.lower(),
        PATH=source["path"],
        VALUE=source["value"],
        LABEL=source["label"],
    )


def _polling_trigger(trigger: dict[str, Any]) -> str:
    return fill(
        """\
'use strict';
@@NOTE@@
const { call } = require('../lib/bridge');

// Newest first, deduplicated by Zapier on `id`; the editor's sample asks for ?sample=1.
module.exports = {
  key: '@@KEY@@',
  noun: '@@NOUN@@',
  display: {
    label: '@@LABEL@@',
    description: @@DESCRIPTION@@,
  },
  operation: {
    type: 'polling',
    inputFields: @@INPUTS@@,
    perform: (z, bundle) => {
      const params = { agent_id: bundle.inputData.agent_id };
      if (bundle.meta && bundle.meta.isLoadingSample) params.sample = 1;
      return call(z, bundle, '@@METHOD@@', '@@PATH@@', { params });
    },
    sample: @@SAMPLE@@,
    outputFields: @@OUTPUTS@@,
  },
};
""",
        NOTE=NOTE,
        KEY=trigger["key"],
        NOUN=trigger["noun"],
        LABEL=trigger["label"],
        DESCRIPTION=js(trigger["description"]),
        INPUTS=_indent(js(_inputs(user_params(trigger))), 4),
        METHOD=trigger["polling"]["method"],
        PATH=trigger["polling"]["path"],
        SAMPLE=_indent(js(sample_item(trigger["sample"])), 4),
        OUTPUTS=_indent(js(_outputs(trigger["output_fields"])), 4),
    )


def _hook_trigger(trigger: dict[str, Any]) -> str:
    hook = trigger["hook"]
    listing = hook["list"]
    return fill(
        """\
'use strict';
@@NOTE@@
const { call, verifySignature } = require('../lib/bridge');

// A REST hook: the bridge POSTs each new item to Zapier's target URL, signed with the secret
// it returned when subscribing (Standard Webhooks), which perform checks before using it.
module.exports = {
  key: '@@KEY@@_instant',
  noun: '@@NOUN@@',
  display: {
    label: '@@LABEL@@ (Instant)',
    description: @@DESCRIPTION@@,
  },
  operation: {
    type: 'hook',
    inputFields: @@INPUTS@@,
    performSubscribe: (z, bundle) =>
      call(z, bundle, '@@SUB_METHOD@@', '@@SUB_PATH@@', {
        body: {
          @@TARGET@@: bundle.targetUrl,
          event: '@@EVENT@@',
          agent_id: bundle.inputData.agent_id,
        },
      }),
    // A hook the bridge already removed (Zapier answered 410 to it) is unsubscribed too.
    performUnsubscribe: (z, bundle) =>
      call(z, bundle, '@@UNSUB_METHOD@@', `@@UNSUB_PATH@@`, { missingOk: true }),
    perform: (z, bundle) => {
      const raw = bundle.rawRequest || {};
      if (raw.headers && typeof raw.content === 'string') {
        try {
          const secret = bundle.subscribeData && bundle.subscribeData.secret;
          verifySignature(secret, raw.headers, raw.content);
        } catch (error) {
          throw new z.errors.HaltedError(error.message);
        }
      } else {
        throw new z.errors.HaltedError('No raw request: cannot verify the delivery signature');
      }
      return [bundle.cleanedRequest];
    },
    performList: (z, bundle) =>
      call(z, bundle, '@@LIST_METHOD@@', '@@LIST_PATH@@', {
        params: { ...@@LIST_PARAMS@@, @@LIST_INPUTS@@ },
      }),
    sample: @@SAMPLE@@,
    outputFields: @@OUTPUTS@@,
  },
};
""",
        NOTE=NOTE,
        KEY=trigger["key"],
        NOUN=trigger["noun"],
        LABEL=trigger["label"],
        DESCRIPTION=js(trigger["description"]),
        INPUTS=_indent(js(_inputs(user_params(trigger))), 4),
        SUB_METHOD=hook["subscribe"]["method"],
        SUB_PATH=hook["subscribe"]["path"],
        TARGET=hook["subscribe"]["target_field"],
        EVENT=hook["event"],
        UNSUB_METHOD=hook["unsubscribe"]["method"],
        UNSUB_PATH=hook["unsubscribe"]["path"].replace(
            "{id}", "${encodeURIComponent(bundle.subscribeData.id)}"
        ),
        LIST_METHOD=listing["method"],
        LIST_PATH=listing["path"],
        LIST_PARAMS=js(listing["params"], indent=None),
        LIST_INPUTS=", ".join(f"{k}: bundle.inputData.{k}" for k in listing["params_from_input"]),
        SAMPLE=_indent(js(sample_item(trigger["sample"])), 4),
        OUTPUTS=_indent(js(_outputs(trigger["output_fields"])), 4),
    )


def _action(action: dict[str, Any]) -> str:
    callback = action.get("callback")
    if callback:
        perform = fill(
            """\
    // Live runs hand Zapier's callback URL to the bridge and pause; the bridge POSTs the job's
    // outcome there and performResume turns it into the output. The editor's test answers inline.
    perform: async (z, bundle) => {
      const body = buildBody(FIELDS, bundle.inputData);
      const loadingSample = Boolean(bundle.meta && bundle.meta.isLoadingSample);
      const callbackUrl = loadingSample ? null : z.generateCallbackUrl();
      if (callbackUrl) body.@@FIELD@@ = callbackUrl;
      return call(z, bundle, '@@METHOD@@', '@@PATH@@', { body });
    },
    performResume: (z, bundle) => resumeJob(z, bundle.cleanedRequest),""",
            FIELD=callback["field"],
            METHOD=action["method"],
            PATH=action["path"],
        )
        helpers = "buildBody, call, resumeJob"
    else:
        perform = fill(
            """\
    perform: (z, bundle) =>
      call(z, bundle, '@@METHOD@@', '@@PATH@@', { body: buildBody(FIELDS, bundle.inputData) }),""",
            METHOD=action["method"],
            PATH=action["path"],
        )
        helpers = "buildBody, call"
    return fill(
        """\
'use strict';
@@NOTE@@
const { @@HELPERS@@ } = require('../lib/bridge');

// The bridge's input fields, as the body is built from them.
const FIELDS = @@FIELDS@@;

module.exports = {
  key: '@@KEY@@',
  noun: '@@NOUN@@',
  display: {
    label: '@@LABEL@@',
    description: @@DESCRIPTION@@,
  },
  operation: {
    inputFields: @@INPUTS@@,
@@PERFORM@@
    sample: @@SAMPLE@@,
    outputFields: @@OUTPUTS@@,
  },
};
""",
        NOTE=NOTE,
        HELPERS=helpers,
        FIELDS=js(user_inputs(action)),
        KEY=action["key"],
        NOUN=action["noun"],
        LABEL=action["label"],
        DESCRIPTION=js(action["description"]),
        INPUTS=_indent(js(_inputs(user_inputs(action))), 4),
        PERFORM=perform,
        SAMPLE=_indent(js(sample_item(action["sample"])), 4),
        OUTPUTS=_indent(js(_outputs(action["output_fields"])), 4),
    )


def _inputs(fields: list[Field], parent: Field | None = None) -> list[dict[str, Any]]:
    """Zapier input fields: objects flattened to `parent__child`, lists of objects as line items."""
    out: list[dict[str, Any]] = []
    for field in fields:
        if field["type"] == "object" and field.get("children") and parent is None:
            for child in _inputs(field["children"], field):
                out.append(
                    {
                        **child,
                        "key": f"{field['key']}__{child['key']}",
                        "label": f"{label(field)}: {child['label']}",
                        "required": bool(field["required"] and child["required"]),
                    }
                )
            continue
        item: dict[str, Any] = {"key": field["key"], "label": label(field)}
        item["required"] = bool(field["required"])
        if field["type"] == "array" and field.get("children"):
            item["children"] = [
                {**child, "required": False}
                for child in _inputs(field["children"], field)
                if "dict" not in child
            ]
        elif field["type"] == "array":
            item.update(type="string", list=True)
        elif field["type"] == "object":
            item["dict"] = True
        else:
            item["type"] = TYPES[field["type"]]
        if field.get("help_text") and "children" not in item:  # line items take no help text
            item["helpText"] = field["help_text"]
        if field.get("choices"):
            item["choices"] = list(field["choices"])
        if field.get("dynamic"):
            item["dynamic"] = f"list_{field['dynamic']}.id.name"
        out.append(item)
    return out


def _outputs(fields: list[Field], prefix: str = "", parent_label: str = "") -> list[dict[str, Any]]:
    """Zapier output fields: `parent__child` for objects and `parent[]child` for lists."""
    out: list[dict[str, Any]] = []
    for field in fields:
        name = f"{parent_label}{label(field)}"
        if field.get("children"):
            joiner = "[]" if field["type"] == "array" else "__"
            out += _outputs(field["children"], f"{prefix}{field['key']}{joiner}", f"{name}: ")
        elif field["type"] in TYPES:
            out.append({"key": f"{prefix}{field['key']}", "label": name,
                        "type": TYPES[field["type"]]})  # fmt: skip
    return out


def _indent(text: str, spaces: int) -> str:
    return text.replace("\n", "\n" + " " * spaces)


def _readme(manifest: dict[str, Any]) -> str:
    operations = [f"- `{a['key']}`: {a['label']} ({a['kind']})" for a in manifest["actions"]] + [
        f"- `{t['key']}` and `{t['key']}_instant`: {t['label']}" for t in manifest["triggers"]
    ]
    paging = dropdown(manifest, "agents")["paging"]
    return fill(
        """\
# ZappWay Bridge for Zapier

@@GENERATED@@ Install and publish it as `docs/zapier.md` says.

A Zapier Platform CLI project on zapier-platform-core @@CORE@@ (pinned exactly; `package-lock.json`
is committed). Its operations:

@@OPERATIONS@@

Dropdowns (`list_agents`, `list_datastores`) page from Zapier's `bundle.meta.page` (0, 1, ...)
to the bridge's `page` (@@FIRST@@, @@SECOND@@, ...), @@SIZE@@ per page.
""",
        GENERATED=GENERATED.format(target="zapier"),
        CORE=CORE_VERSION,
        OPERATIONS="\n".join(operations),
        FIRST=str(paging["first_page"]),
        SECOND=str(paging["first_page"] + 1),
        SIZE=str(paging["default_limit"]),
    )
