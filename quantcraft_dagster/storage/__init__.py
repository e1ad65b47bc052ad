"""Object storage: one interface, an on-disk folder (embedded default) or S3/MinIO, same keys."""
