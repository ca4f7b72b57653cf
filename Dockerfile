# digest's image: the install steps are deploy/install.sh, which .ci/run also runs, so they
# are tested where no container engine runs. Non-root; the instance folder is a volume.
# pg_dump must be at least the PostgreSQL server's version: bookworm ships 15 (compose.yaml).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/digest/venv/bin:$PATH \
    DIGEST_INSTANCE_PATH=/var/lib/digest

COPY . /src
RUN sh /src/deploy/install.sh && rm -rf /src

USER digest
WORKDIR /var/lib/digest
VOLUME ["/var/lib/digest"]
EXPOSE 5000
# SIGTERM finishes the message in flight; give it DIGEST_SMTP_TIMEOUT (stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=8)"]
CMD ["digest", "run", "--host", "0.0.0.0", "--port", "5000"]
