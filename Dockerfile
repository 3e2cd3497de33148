# The image docker-compose.yaml builds: the official Airflow 3.3.2 image with this provider installed,
# pinned to the versions the test suite runs with.
#
#   docker compose build     # again after changing the library (dags/ and include/ are mounted)
#
# constraints.txt was resolved on Python 3.11, hence the -python3.11 variant of the official image.
# The package is installed here, once, rather than through _PIP_ADDITIONAL_REQUIREMENTS, which
# would reinstall it in every container at every start.
FROM apache/airflow:3.3.2-python3.11

USER root
# Named volumes start as a copy of the image's folder, so create them owned by airflow (group 0 as
# the official image does, for any AIRFLOW_UID).
RUN mkdir -p /opt/airflow/infobip_state /state \
    && chown -R airflow:0 /opt/airflow/infobip_state /state \
    && chmod -R g+rwX /opt/airflow/infobip_state /state
USER airflow

COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/infobip-provider/
COPY --chown=airflow:0 plugins/infobip_provider /opt/infobip-provider/plugins/infobip_provider
RUN pip install --no-cache-dir --constraint /opt/infobip-provider/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" "/opt/infobip-provider[redis,postgres,celery]"

# Airflow's plugins folder gets only the plugin (operator extra links); the library is the package above.
COPY --chown=airflow:0 plugins/infobip_plugin.py plugins/.airflowignore /opt/airflow/plugins/
