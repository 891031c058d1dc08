package org.egressproxy.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.egressproxy.admin.AdminServer;
import org.egressproxy.admin.Status;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.Problems;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.PolicyLoader;
import sun.misc.Signal;

/**
 * The running proxy's life: start every part, reload the policy (SIGHUP, or a change to the
 * configuration file or a catalog file), and stop gracefully on SIGTERM/SIGINT: {@code /readyz}
 * turns 503, the listeners close, open connections get up to {@code shutdown.drain} to finish
 * (a second signal cuts that short), the rest are closed, the decision log is flushed.
 */
final class ProxyService {
  private final Path configFile;
  /** Where problems and lifecycle lines go (standard error). */
  private final PrintWriter err;
  private final AtomicBoolean stopping = new AtomicBoolean();
  private final AtomicBoolean force = new AtomicBoolean();
  private final ExecutorService reloads = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "policy-reload");
    t.setDaemon(true);
    return t;
  });
  private Decider decider;
  private ProxyMetrics metrics;
  private volatile Status.Reload lastReload;
  /** The configuration the listeners, timeouts, limits, ... were set up from at start. */
  private Config running;

  ProxyService(Path configFile, PrintWriter err) {
    this.configFile = configFile;
    this.err = err;
  }

  int run() {
    PolicyLoader.Loaded loaded;
    try {
      loaded = PolicyLoader.load(configFile);
      CommonOptions.printWarnings(loaded.problems(), err);
    } catch (ConfigException e) {
      printProblems(e);
      err.println("configuration error: " + e.errors().size() + " problem"
          + (e.errors().size() == 1 ? "" : "s") + "; nothing was started");
      err.flush();
      return Main.CONFIG_ERROR;
    }
    Config config = loaded.config();
    running = config;
    decider = new Decider(loaded.sources(), config.cacheMaxEntries());
    say(describe(loaded.sources()) + " from " + config.file());
    metrics = new ProxyMetrics();
    metrics.bindDecisionCache(decider.cache());
    DecisionLog log;
    try {
      log = config.decisionLogPath() == null ? DecisionLog.disabled()
          : DecisionLog.open(config.decisionLogPath());
    } catch (RuntimeException e) {
      err.println("egress-proxy: cannot open the decision log " + config.decisionLogPath() + ": "
          + e.getMessage());
      err.flush();
      return Main.CONFIG_ERROR;
    }
    if (log.problem() != null) {
      err.println("egress-proxy: warning: " + log.problem());
      err.flush();
    }
    metrics.bindDecisionLogDrops(log, DecisionLog::dropped);
    Transport transport = Transport.select();
    if (transport.fallbackReason() != null) {
      say(transport.fallbackReason());
    }
    java.util.Map<String, org.egressproxy.net.ProxyTls.Material> tls;
    try {
      tls = org.egressproxy.net.ProxyTls.load(config.listeners());
    } catch (java.io.IOException | java.security.GeneralSecurityException e) {
      err.println("egress-proxy: cannot set up TLS for an https proxy listener: " + e);
      err.flush();
      log.close();
      return Main.CONFIG_ERROR;
    }
    tls.forEach((name, m) -> {
      if (m.caFile() != null) {
        say("listener '" + name + "' is an HTTPS proxy; clients must trust the CA in "
            + m.caFile().toAbsolutePath() + " (AKS trustedCa)");
      }
    });
    ProxyServer server = new ProxyServer(config, decider, log, metrics, transport, tls);
    try {
      server.start(config.listeners());
    } catch (ProxyServer.BindException e) {
      err.println("egress-proxy: " + e.getMessage());
      err.flush();
      log.close();
      return Main.CONFIG_ERROR;
    }
    server.boundAddresses().forEach((name, a) -> say("listener '" + name + "' on "
        + org.egressproxy.match.IpLiteral.hostPort(a) + " (" + transport.name() + ")"));
    AdminServer admin = null;
    if (config.adminBind() != null) {
      try {
        admin = new AdminServer(config.adminBind(), transport, metrics, status());
        server.loopGuard().add(admin.address());
        say("admin on " + org.egressproxy.match.IpLiteral.hostPort(admin.address())
            + " (/, /policy, /metrics, /healthz, /readyz, /check)");
      } catch (Exception e) {
        err.println("egress-proxy: cannot bind the admin listener to " + config.adminBind()
            + ": " + e.getMessage());
        err.flush();
        server.close();
        log.close();
        return Main.CONFIG_ERROR;
      }
    }
    CountDownLatch stop = new CountDownLatch(1);
    Signal.handle(new Signal("TERM"), s -> signalled(stop));
    Signal.handle(new Signal("INT"), s -> signalled(stop));
    Signal.handle(new Signal("HUP"), s -> reloads.execute(() -> reload("SIGHUP")));
    Thread watcher = watch(config);
    say("ready. SIGHUP (or a changed config or catalog file) reloads the policy; SIGTERM stops.");

    try {
      stop.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    stopping.set(true);
    if (watcher != null) {
      watcher.interrupt();
    }
    reloads.shutdownNow();
    server.stopAccepting();
    int open = server.clientChannels().size();
    if (open > 0) {
      say("draining " + open + " connection(s) for up to " + config.shutdownDrain().toSeconds()
          + " s (a second SIGTERM stops now)");
    }
    try {
      int left = server.awaitDrained(config.shutdownDrain(), force::get);
      if (left > 0) {
        say("closing " + left + " connection(s) still open");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (admin != null) {
      admin.close();
    }
    server.close();
    log.close();
    say("stopped");
    return Main.OK;
  }

  private Status status() {
    return new Status() {
      @Override
      public boolean ready() {
        return !stopping.get();
      }

      @Override
      public org.egressproxy.policy.Sources sources() {
        return decider.sources();
      }

      @Override
      public Reload lastReload() {
        return lastReload;
      }

      @Override
      public java.util.Map<String, Integer> active() {
        return metrics.activeByListener();
      }

      @Override
      public java.util.List<java.util.Map.Entry<String, Long>> topDenied(int n) {
        return metrics.topDenied().top(n);
      }
    };
  }

  private void signalled(CountDownLatch stop) {
    if (stop.getCount() == 0) {
      force.set(true); // second signal: stop draining
    }
    stop.countDown();
  }

  /** Reloads the configuration; a broken one keeps the current policy serving. */
  void reload(String why) {
    try {
      PolicyLoader.Loaded next = PolicyLoader.load(configFile);
      CommonOptions.printWarnings(next.problems(), err);
      decider.install(next.sources());
      metrics.reload(true);
      List<String> notes = new ArrayList<>(
          next.problems().warnings().stream().map(Object::toString).toList());
      List<String> restartOnly = running.restartOnlyChanges(next.config());
      if (!restartOnly.isEmpty()) {
        String line = configFile + ": " + String.join(", ", restartOnly) + " changed; a reload"
            + " applies the policy only: restart the proxy for the rest";
        notes.add(line);
        err.println("egress-proxy: " + line);
        err.flush();
      }
      lastReload = new Status.Reload(java.time.Instant.now(), why, true, List.of(), notes);
      say("reloaded (" + why + "): " + describe(next.sources()));
    } catch (ConfigException e) {
      metrics.reload(false);
      lastReload = new Status.Reload(java.time.Instant.now(), why, false,
          e.problems().errors().stream().map(Object::toString).toList(),
          e.problems().warnings().stream().map(Object::toString).toList());
      printProblems(e);
      err.println("egress-proxy: reload failed (" + why + "); still serving policy generation "
          + decider.policy().generation());
      err.flush();
    }
  }

  /**
   * Watches the configuration file and the catalog directories; a change reloads, once things
   * have been quiet for half a second (editors write in several steps). Any event in a watched
   * directory leads to a look at the files themselves, through their links: a Kubernetes
   * ConfigMap mounted as a directory changes by swapping its {@code ..data} link, and the
   * files' own names never appear in an event. A reload happens when where the files' links
   * lead or what they hold changed.
   */
  private Thread watch(Config config) {
    if (configFile == null) {
      return null;
    }
    Set<Path> dirs = new HashSet<>();
    Path abs = configFile.toAbsolutePath();
    dirs.add(abs.getParent());
    List<Path> catalogDirs = new ArrayList<>();
    config.policy().catalogDirs().forEach(d -> catalogDirs.add(d.path().toAbsolutePath()));
    dirs.addAll(catalogDirs);
    WatchService ws;
    try {
      ws = FileSystems.getDefault().newWatchService();
      for (Path d : dirs) {
        d.register(ws, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_MODIFY,
            StandardWatchEventKinds.ENTRY_DELETE);
      }
    } catch (IOException e) {
      err.println("egress-proxy: not watching the configuration for changes: " + e);
      return null;
    }
    Map<Path, String> atStart = fingerprint(abs, catalogDirs); // before "ready."
    Set<Path> catalogSet = new HashSet<>(catalogDirs);
    Thread t = new Thread(() -> {
      Map<Path, String> seen = atStart;
      try (ws) {
        while (!Thread.currentThread().isInterrupted()) {
          if (!concernsUs(ws.take(), abs, catalogSet)) {
            continue;
          }
          // Quiet for half a second among the events that concern us (never more than 5 s in
          // all): a decision log written in the same directory neither starts nor delays this.
          long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
          long until = Math.min(System.nanoTime() + QUIET_NANOS, giveUp);
          long left;
          while ((left = until - System.nanoTime()) > 0) {
            WatchKey key = ws.poll(left, TimeUnit.NANOSECONDS);
            if (key != null && concernsUs(key, abs, catalogSet)) {
              until = Math.min(System.nanoTime() + QUIET_NANOS, giveUp);
            }
          }
          Map<Path, String> current = fingerprint(abs, catalogDirs);
          if (!current.equals(seen)) {
            seen = current;
            reloads.execute(() -> reload("file changed"));
          }
        }
      } catch (InterruptedException | IOException | java.nio.file.ClosedWatchServiceException e) {
        // stopping
      }
    }, "config-watch");
    t.setDaemon(true);
    t.start();
    return t;
  }

  private static final long QUIET_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

  /**
   * Takes a key's events and re-arms it; true when one of them may concern the configuration:
   * anything but a plain file that is neither the configuration file nor a catalog. So links
   * and directories count (a ConfigMap's {@code ..data} swap, a {@code current} link), and so do
   * names that are gone; the decision log, an editor's swap file or a rotated log do not.
   */
  static boolean concernsUs(WatchKey key, Path configFile, Set<Path> catalogDirs) {
    Path dir = (Path) key.watchable();
    boolean concerns = false;
    for (java.nio.file.WatchEvent<?> e : key.pollEvents()) {
      if (!(e.context() instanceof Path name)) {
        concerns = true; // OVERFLOW: events were lost
        continue;
      }
      Path file = dir.resolve(name);
      boolean ours = file.equals(configFile)
          || catalogDirs.contains(dir) && name.toString().endsWith(".yaml");
      concerns |= ours || !Files.isRegularFile(file, java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }
    key.reset();
    return concerns;
  }

  /**
   * The configuration file and every {@code *.yaml} in the catalog directories, each as where
   * its links lead and the SHA-256 of its bytes ("missing" when it cannot be read).
   */
  static Map<Path, String> fingerprint(Path configFile, List<Path> catalogDirs) {
    Map<Path, String> out = new java.util.TreeMap<>();
    out.put(configFile, fileFingerprint(configFile));
    for (Path dir : catalogDirs) {
      try (java.util.stream.Stream<Path> files = Files.list(dir)) {
        files.filter(f -> f.getFileName().toString().endsWith(".yaml")
                && !f.getFileName().toString().startsWith(".."))
            .forEach(f -> out.put(f, fileFingerprint(f)));
      } catch (IOException | java.io.UncheckedIOException e) {
        out.put(dir, "unreadable");
      }
    }
    return out;
  }

  private static String fileFingerprint(Path f) {
    try {
      return f.toRealPath() + " " + java.util.HexFormat.of().formatHex(
          java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
    } catch (IOException e) {
      return "missing";
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e); // every JDK has SHA-256
    }
  }

  private void printProblems(ConfigException e) {
    for (Problems.Problem p : e.problems().all()) {
      err.println(p);
    }
    err.flush();
  }

  /**
   * A lifecycle line (listeners, ready, reloads, stop): on standard error, so that with
   * {@code decisionLog.path: "-"} standard output carries the JSON Lines and nothing else.
   */
  private void say(String line) {
    err.println("egress-proxy: " + line);
    err.flush();
  }

  static String describe(org.egressproxy.policy.Sources s) {
    String text = describe(s.base());
    if (!s.configured()) {
      return text;
    }
    StringBuilder sb = new StringBuilder(text).append("; sources:");
    for (var src : s.list()) {
      sb.append(' ').append(src.name()).append(" (").append(src.policy().ruleCount())
          .append(" rules)");
    }
    return sb.toString();
  }

  static String describe(CompiledPolicy p) {
    return "policy generation " + p.generation() + " (" + p.mode().name().toLowerCase() + "): "
        + p.catalogs().size() + " catalogs, " + p.ruleCount() + " rules";
  }
}
