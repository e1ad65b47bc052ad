# The engine sandbox image: glibc (Debian's libc6 files) and nothing else — no shell, no tools —
# so a contestant's dynamically linked engine runs and finds nothing to use.
ARG BASE=quantcraft/bookworm:minbase
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
USER 65534:65534
WORKDIR /app
