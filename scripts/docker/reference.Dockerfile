# The reference implementation as an image, built with no registry at all.
#
# Build context: a wheelhouse made on the host by scripts/docker/build-images.sh (the project
# wheel and every dependency), so nothing is fetched while building. The base image is imported
# from a debootstrap root file system by the same script; it is never pulled.

# Stage 1: install into a venv. The wheels stay in this stage, so they add nothing to the result.
FROM sessionlab-base:bookworm AS install
LABEL org.sessionlab.image=1
COPY . /wheels/
RUN PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m venv /opt/sessionlab \
    && PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/sessionlab/bin/pip install \
        --quiet --no-cache-dir --no-index --find-links /wheels sessionlab

# Stage 2: the base plus the venv (its python is a link to the base's /usr/bin/python3).
FROM sessionlab-base:bookworm
LABEL org.sessionlab.image=1
COPY --from=install /opt/sessionlab /opt/sessionlab
# Unbuffered output: tests read server logs from `docker logs` while the server runs.
ENV PATH=/opt/sessionlab/bin:$PATH \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["/opt/sessionlab/bin/sessionlab"]
CMD ["--help"]
