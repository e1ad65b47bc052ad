# The Docker sandbox's probe image: the load generator and the interpreter it runs on, on the
# engine's glibc image, and nothing else (deploy/loadgen_files.py lists what it needs). One probe
# per judging holds the network and pid namespaces its engines join (judge/docker_sandbox.py): on
# the vfs storage driver a container costs time per file of its image, so this one stays small.
ARG APP=quantcraft/app:latest
ARG SANDBOX=quantcraft/sandbox:bookworm
FROM ${APP} AS full
RUN python deploy/loadgen_files.py > /tmp/files \
 && mkdir -p /out/work /out/tmp \
 && tar -C / -cf - -T /tmp/files | tar -C /out -xf - \
 && chmod 1777 /out/tmp

FROM ${SANDBOX}
COPY --from=full /out/ /
USER 0:0
WORKDIR /work
ENV PATH=/opt/venv/bin:/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1
