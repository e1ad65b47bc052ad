# Offline stand-in for MinIO (deploy/compose.offline.yml): moto's S3-compatible server, for
# machines that cannot pull the MinIO image. Never used in production.
FROM quantcraft/app:latest
RUN pip install "moto[server]>=5"
