# The engine sandbox image: glibc (Debian's libc6 files) and qctail, which starts the engine and
# keeps its output tail (quantcraft_dagster/judge/tail.py), and nothing else — no shell, no tools —
# so a contestant's dynamically linked engine runs and finds nothing to use.
ARG BASE=quantcraft/bookworm:minbase
FROM ${BASE} AS qctail
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
COPY quantcraft_dagster/judge/native/qctail.c quantcraft_dagster/judge/native/Makefile /src/
RUN make -s -C /src qctail

FROM ${BASE} AS glibc
RUN mkdir -p /out/app /out/tmp \
 && cp -a /bin /lib /lib64 /sbin /out/ \
 && dpkg -L libc6 | while read -r f; do \
      if [ -f "$f" ] || [ -L "$f" ]; then \
        cp -a --parents "$(readlink -f "$(dirname "$f")")/$(basename "$f")" /out; \
      fi; \
    done \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=glibc /out/ /
# tail.IN_SANDBOX
COPY --from=qctail /src/qctail /opt/quantcraft/qctail
USER 65534:65534
WORKDIR /app
