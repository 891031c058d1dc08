# egress-proxy container image.
#   docker build -t egress-proxy .
#   docker run --rm -p 3128:3128 -p 9090:9090 egress-proxy
# Layout in the image:
#   /opt/egress-proxy/egress-proxy.jar   the proxy
#   /etc/egress-proxy/proxy.yaml         deploy/kubernetes/proxy.yaml (config/proxy.yaml with the
#                                        decision log on stdout); mount another file over it
#   /etc/egress-proxy/catalog/           config/catalog (also bundled in the jar)
# Runs as user egress-proxy (uid 10001), no capabilities: the listener ports are above 1024.

# ---- build: the jar, with the build's own Maven and JDK; tests run in CI, not here --------
FROM maven:3.9-eclipse-temurin-17 AS build
WORKDIR /src
# The POMs first: their dependency download is a layer of its own, reused while only sources change.
COPY pom.xml ./
COPY proxy/pom.xml proxy/
COPY benchmarks/pom.xml benchmarks/
RUN mvn -B -q -pl proxy -am dependency:go-offline
COPY config/ config/
COPY proxy/src/ proxy/src/
RUN mvn -B -q -pl proxy -am package -DskipTests

# ---- run: a JRE only ---------------------------------------------------------------------
FROM eclipse-temurin:17-jre
RUN groupadd --system --gid 10001 egress-proxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin egress-proxy
COPY --from=build /src/proxy/target/egress-proxy.jar /opt/egress-proxy/egress-proxy.jar
COPY config/catalog/ /etc/egress-proxy/catalog/
COPY deploy/kubernetes/proxy.yaml /etc/egress-proxy/proxy.yaml
USER 10001:10001
WORKDIR /tmp
# explicit proxy, transparent TLS (tls-sni), transparent HTTP (http-host), admin
EXPOSE 3128 8443 8080 9090
# GET /healthz on the admin port, with bash alone (the JRE image has no HTTP client to spare a
# JVM start every 30 s).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# JVM flags (measured figures in deploy/README.md):
#   MaxRAMPercentage=35   heap from the container's memory limit; the live heap is small (9 MB
#                         after start, 14 MB under 38,000 tunnel set-ups), the rest is room for
#                         the decision cache and fewer collections
#   MaxDirectMemorySize   Netty's pooled buffers, bounded so heap + direct + the JVM's own
#                         (~130 MB) stay under a 1 GiB limit: 358 + 256 + 130 MB
#   +UseG1GC              explicit: with < 2 CPUs or < 1792 MB the JVM picks Serial, which stops
#                         every relay for each collection
#   MinHeapFreeRatio=5, MaxHeapFreeRatio=10  give heap the collector freed back to the system
#                         instead of keeping 70 % headroom: RSS per idle tunnel 5.9 KB instead
#                         of 9.2 KB (live heap 3.3 KB either way), throughput the same within
#                         noise (benchmarks/RESULTS.md, 2026-11-23)
#   +ExitOnOutOfMemoryError  exit and let the kubelet / Docker restart the container
# JAVA_TOOL_OPTIONS adds to or overrides these at run time.
ENTRYPOINT ["java", "-XX:MaxRAMPercentage=35", "-XX:MaxDirectMemorySize=256m", "-XX:+UseG1GC", \
            "-XX:MinHeapFreeRatio=5", "-XX:MaxHeapFreeRatio=10", \
            "-XX:+ExitOnOutOfMemoryError", "-jar", "/opt/egress-proxy/egress-proxy.jar"]
CMD ["run", "--config", "/etc/egress-proxy/proxy.yaml"]
