# Junction in a container: every HTTP surface (`junction --mode serve`) on port 8765, as a
# non-root user, with its data in a volume. Configure it by mounting a file over
# /etc/junction/junction.yaml (or pointing JUNCTION_CONFIG elsewhere); the default file
# (deploy/junction.yaml) needs JUNCTION_API_KEY, since off loopback Junction refuses to start
# without a key.
#
#   docker build -t junction .
#   docker run -p 8765:8765 -e JUNCTION_API_KEY=change-me \
#     -v "$PWD/junction.yaml:/etc/junction/junction.yaml:ro" junction

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY transports/ transports/
COPY router_core/ router_core/
COPY mcp_gateway/ mcp_gateway/
COPY a2a/ a2a/
COPY acp/ acp/
COPY stores/ stores/
COPY junction/ junction/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin junction \
    && mkdir -p /var/lib/junction /etc/junction \
    && chown junction:junction /var/lib/junction
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/junction.yaml /etc/junction/junction.yaml
ENV JUNCTION_CONFIG=/etc/junction/junction.yaml \
    JUNCTION_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/junction"]
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/health/live', timeout=2)"]
ENTRYPOINT ["junction"]
CMD ["--mode", "serve"]
