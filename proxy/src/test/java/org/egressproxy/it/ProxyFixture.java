package org.egressproxy.it;

import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.PolicyCompiler;
import org.egressproxy.policy.Sources;

/** The proxy, in-process, from YAML text; listeners bound to 127.0.0.1:0. */
public final class ProxyFixture implements AutoCloseable {
  public final ProxyServer server;
  public final DecisionLog log;
  public final ProxyMetrics metrics;
  public final Path logFile;
  private final Decider decider;
  private org.egressproxy.admin.AdminServer admin;

  public ProxyFixture(String yaml, Path logFile) {
    this(yaml, logFile, Transport.select());
  }

  public ProxyFixture(String yaml, Path logFile, Transport transport) {
    this.logFile = logFile;
    Problems problems = new Problems();
    Config config = ConfigLoader.read("test.yaml", new StringReader(yaml), problems);
    if (config == null || problems.hasErrors()) {
      throw new IllegalArgumentException(problems.all().toString());
    }
    Sources sources = new PolicyCompiler().compileSources(config,
        CatalogSet.load(config.policy().catalogDirs(), problems), problems);
    if (sources == null) {
      throw new IllegalArgumentException(problems.all().toString());
    }
    decider = new Decider(sources, config.cacheMaxEntries());
    metrics = new ProxyMetrics();
    metrics.bindDecisionCache(decider.cache());
    log = logFile == null ? DecisionLog.disabled() : DecisionLog.open(logFile.toString());
    metrics.bindDecisionLogDrops(log, DecisionLog::dropped);
    try {
      server = new ProxyServer(config, decider, log, metrics, transport,
          org.egressproxy.net.ProxyTls.load(config.listeners()));
    } catch (java.io.IOException | java.security.GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
    try {
      server.start(config.listeners());
    } catch (ProxyServer.BindException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A port free right now on 127.0.0.1, for a listener or process that binds it itself. */
  public static int freePort() throws java.io.IOException {
    try (java.net.ServerSocket probe = new java.net.ServerSocket(0)) {
      return probe.getLocalPort();
    }
  }

  /** The most bytes any client connection has waiting in the proxy to be written to it. */
  public long maxPendingToAClient() {
    return server.clientChannels().stream()
        .mapToLong(ch -> ch.unsafe().outboundBuffer() == null ? 0
            : ch.unsafe().outboundBuffer().totalPendingWriteBytes())
        .max().orElse(0);
  }

  public int port(String listener) {
    return server.boundAddresses().get(listener).getPort();
  }

  /** Starts the admin listener on 127.0.0.1 (once) and returns its port. */
  public synchronized int adminPort() throws InterruptedException {
    if (admin == null) {
      admin = new org.egressproxy.admin.AdminServer(
          org.egressproxy.config.HostPort.parse("127.0.0.1:0"), server.transport(), metrics,
          new org.egressproxy.admin.Status() {
            @Override
            public boolean ready() {
              return true;
            }

            @Override
            public Sources sources() {
              return decider.sources();
            }

            @Override
            public Reload lastReload() {
              return null;
            }

            @Override
            public java.util.Map<String, Integer> active() {
              return metrics.activeByListener();
            }

            @Override
            public List<java.util.Map.Entry<String, Long>> topDenied(int n) {
              return metrics.topDenied().top(n);
            }
          });
      server.loopGuard().add(admin.address());
    }
    return admin.address().getPort();
  }

  /** The admin endpoint's answer to GET {@code path}: "status body". */
  public String admin(String path) throws Exception {
    java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
        java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:"
            + adminPort() + path)).timeout(java.time.Duration.ofSeconds(10)).build(),
        java.net.http.HttpResponse.BodyHandlers.ofString());
    return r.statusCode() + " " + r.body();
  }

  /** Closes the proxy and the log, and returns the log's lines. */
  public List<String> closeAndReadLog() throws Exception {
    close();
    return logFile == null ? List.of() : Files.readAllLines(logFile);
  }

  @Override
  public void close() {
    if (admin != null) {
      admin.close();
    }
    server.close();
    log.close();
  }
}
