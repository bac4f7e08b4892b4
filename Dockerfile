FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY voicepulse ./voicepulse
COPY ingest ./ingest
COPY processors ./processors
COPY warehouse ./warehouse
COPY dashboards ./dashboards
COPY alerting ./alerting
COPY simulator ./simulator
RUN pip install --no-cache-dir .
EXPOSE 8000
ENTRYPOINT []
CMD ["voicepulse", "run"]
