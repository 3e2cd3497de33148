"""Apache Airflow provider for Infobip: cohorts into lists and People, personalised SMS.

Only cheap imports here: Airflow reads :func:`get_provider_info` through the
``apache_airflow_provider`` entry point in every process.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _field(label: str, description: str, type_: str, **schema: Any) -> dict[str, Any]:
    """An optional extra field. The React UI (Airflow 3) treats a field whose JSON-schema type
    excludes ``null`` as required, and keeps Save disabled until it is filled; every extra of this
    connection is optional, so each type admits ``null`` (the default, if any, still pre-fills it)."""
    return {"label": label, "description": description, "schema": {"type": [type_, "null"], **schema}}


#: Extra fields of the ``infobip`` connection (stored in ``Connection.extra``). The add dialog of
#: Airflow 3.3 stores every field, unset ones as ``null``; the hook reads ``null`` as "not set".
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "application_id": _field(
        "Application ID", "Optional Infobip application id sent with messages (platform options).", "string"
    ),
    "entity_id": _field(
        "Entity ID", "Optional Infobip entity id sent with messages (platform options).", "string"
    ),
    "sender": _field(
        "Default SMS sender",
        "Sender used when a task names none: 3-11 letters/digits or 3-16 digits.",
        "string",
        maxLength=16,
    ),
    "cooldown_scale": _field(
        "Cooldown scale",
        "Multiplies every endpoint's cooldown interval. 1.0 for Infobip; e.g. 0.01 against the sandbox.",
        "number",
        default=1.0,
        minimum=0.0,
    ),
    "cooldown_backend": _field(
        "Cooldown backend",
        "Where call slots are reserved: memory (one process), file (one host), redis (many hosts), "
        "auto (redis when a Redis URL is set, else file).",
        "string",
        default="auto",
        enum=["auto", "memory", "file", "redis"],
    ),
    "cooldown_redis_url": _field(
        "Cooldown Redis URL",
        "redis://host:6379/0 shared by every worker using this API key (Celery, Kubernetes).",
        "string",
    ),
    "state_uri": _field(
        "State URI",
        "Folder or object-store URI (file://, s3://, gs://) for list ids, snapshots, checkpoints and "
        "ledgers. Default: $AIRFLOW_HOME/infobip_state.",
        "string",
    ),
    "allow_insecure_http": _field(
        "Allow plain http",
        "Only for a sandbox on a private network (the docker-compose stack): allow an http:// base URL "
        "that is not a loopback host. Never for a real account.",
        "boolean",
        default=False,
    ),
    "timeout": _field(
        "Timeout (s)", "Seconds to wait for Infobip's answer to one request.", "number", default=30, minimum=1
    ),
    "webhook_secret": _field(
        "Webhook secret",
        "Turns on the receiver of Infobip's pushes (delivery and seen reports, inbound messages) at "
        "/infobip-webhooks/<conn_id>/... on the api-server: a push is accepted only with this secret "
        "(?secret=, the X-Webhook-Secret header or a Basic password). Empty: pushes are refused.",
        "string",
    ),
}


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager."""
    return {
        "package-name": "airflow-provider-infobip",
        "name": "Infobip",
        "description": "Sync cohorts from files and warehouses into Infobip lists, People and SMS, "
        "paced by every endpoint's cooldown.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "infobip",
                "hook-class-name": "infobip_provider.hooks.infobip.InfobipHook",
                "hook-name": "Infobip",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {
                        "host": "xxxxx.api.infobip.com",
                        "password": "the API key from the Infobip portal",
                    },
                },
            }
        ],
        "extra-links": ["infobip_provider.links.InfobipSyncLink", "infobip_provider.links.InfobipPortalLink"],
    }
