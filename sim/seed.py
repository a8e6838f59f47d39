"""The demo data set behind ``POST /__admin/seed`` and ``python -m sim --seed-demo``."""

from __future__ import annotations

from typing import Any

from . import factory, render
from .models import Org
from .state import Store

DEMO_DOCUMENTS = [
    {
        "id": "returns-policy",
        "name": "Returns FAQ",
        "text": "Our return window is 30 days. Items must be unused and in their original box.",
        "metadata": {"source_url": "https://example.com/returns"},
    },
    {
        "id": "shipping-policy",
        "name": "Shipping",
        "text": "We ship worldwide. Orders leave our warehouse within 2 business days.",
        "metadata": {"source_url": "https://example.com/shipping"},
    },
]
DEMO_CONVERSATIONS = [
    ("2026-05-02T09:58:40Z", "website", "Do you ship to Canada?", None),
    ("2026-05-02T10:04:11Z", "api", "What is your return policy?", None),
    ("2026-05-02T10:30:00Z", "form", "Please call me back.", {"email": "ada@example.com"}),
]


def org_dict(org: Org) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "plan": org.plan, "rate_limit": org.rate_limit}


def seed_demo(store: Store, plan: Any = "free") -> dict[str, Any]:
    """Create the demo org, key, datastore, agents and conversations; return them."""
    with store.lock:
        org = factory.create_org(store, "Demo Org", plan)
        key = factory.create_key(store, org.id)
        datastore = factory.create_datastore(store, org.id, "Help Center", docs=DEMO_DOCUMENTS)
        support = factory.create_agent(
            store, org.id, "Support Agent", handle="support", datastore_ids=[datastore.id]
        )
        public = factory.create_agent(
            store, org.id, "Public FAQ", visibility="public", handle="publicfaq"
        )
        conversations = []
        for created, channel, question, lead in DEMO_CONVERSATIONS:
            conv = factory.create_conversation(
                store,
                support.id,
                created_at=created,
                channel=channel,
                lead=lead,
                messages=[
                    {"from": "human", "text": question},
                    {"from": "agent", "text": "Happy to help."},
                ],
            )
            conversations.append(render.conversation(conv))
        return {
            "org": org_dict(org),
            "key": key.key,
            "agents": [render.agent(a, org) for a in (support, public)],
            "datastores": [render.datastore(datastore, len(store.documents_of(datastore.id)))],
            "conversations": conversations,
        }
