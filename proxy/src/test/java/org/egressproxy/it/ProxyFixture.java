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
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.PolicyCompiler;

/** The proxy, in-process, from YAML text; listeners bound to 127.0.0.1:0. */
public final class ProxyFixture implements AutoCloseable {
  public final ProxyServer server;
  public final DecisionLog log;
  public final ProxyMetrics metrics;
  public final Path logFile;

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
    CompiledPolicy policy = new PolicyCompiler().compile(config,
        CatalogSet.load(config.policy().catalogDirs(), problems), problems);
    if (policy == null) {
      throw new IllegalArgumentException(problems.all().toString());
    }
    Decider decider = new Decider(policy, config.cacheMaxEntries());
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

  public int port(String listener) {
    return server.boundAddresses().get(listener).getPort();
  }

  /** Closes the proxy and the log, and returns the log's lines. */
  public List<String> closeAndReadLog() throws Exception {
    close();
    return logFile == null ? List.of() : Files.readAllLines(logFile);
  }

  @Override
  public void close() {
    server.close();
    log.close();
  }
}
