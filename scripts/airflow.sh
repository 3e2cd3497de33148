#!/bin/sh
# Airflow's CLI with the configuration and metadata database of `make ui` (.demo/ui/airflow, this
# repository's dags/ and plugins/, the writable warehouse_default), from any folder:
#
#   scripts/airflow.sh tasks test infobip_cohort_to_list sync_list 2026-01-01
#   scripts/airflow.sh dags test infobip_cohort_to_list --conf '{"dry_run": true}'
#
# Sets up .venv (make install) and migrates the metadata database when needed. When infobip_default
# is neither saved in make ui's UI nor given as AIRFLOW_CONN_INFOBIP_DEFAULT, it is the sandbox on
# 127.0.0.1:8765, started for the command when make ui is not running. See scripts/ui.py.
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/.venv/.installed" ] || make -C "$root" --no-print-directory install
exec "$root/.venv/bin/python" "$root/scripts/ui.py" airflow "$@"
