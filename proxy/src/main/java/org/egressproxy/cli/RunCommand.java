package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Callable;
import org.egressproxy.admin.AdminServer;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.Problems;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.PolicyLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import sun.misc.Signal;

/**
 * Loads the policy and serves until SIGTERM or SIGINT (exit 0); SIGHUP reloads the configuration,
 * keeping the old policy when the new one has errors. Exit 2 when the configuration is invalid at
 * start.
 */
@Command(name = "run", description = "Serve until SIGTERM/SIGINT; SIGHUP reloads (the default).")
final class RunCommand implements Callable<Integer> {
  @ParentCommand Main main;
  @Spec CommandSpec spec;
  PrintWriter out;
  PrintWriter err;

  @Override
  public Integer call() {
    if (spec != null) {
      out = spec.commandLine().getOut();
      err = spec.commandLine().getErr();
    }
    PolicyLoader.Loaded loaded = CommonOptions.load(main, err);
    if (loaded == null) {
      return Main.CONFIG_ERROR;
    }
    Decider decider = new Decider(loaded.policy(), loaded.config().cacheMaxEntries());
    out.println("egress-proxy: " + describe(loaded.policy()) + " from " + loaded.config().file());
    ProxyMetrics metrics = new ProxyMetrics();
    metrics.bindDecisionCache(decider.cache());
    DecisionLog log;
    try {
      log = loaded.config().decisionLogPath() == null ? DecisionLog.disabled()
          : DecisionLog.open(loaded.config().decisionLogPath());
    } catch (RuntimeException e) {
      err.println("egress-proxy: cannot open the decision log " + loaded.config()
          .decisionLogPath() + ": " + e.getMessage());
      return Main.CONFIG_ERROR;
    }
    metrics.bindDecisionLogDrops(log, DecisionLog::dropped);
    Transport transport = Transport.select();
    if (transport.fallbackReason() != null) {
      out.println("egress-proxy: native epoll unavailable, using NIO (" + transport.fallbackReason()
          + ")");
    }
    ProxyServer server = new ProxyServer(loaded.config(), decider, log, metrics, transport);
    try {
      server.start(loaded.config().listeners());
    } catch (ProxyServer.BindException e) {
      err.println("egress-proxy: " + e.getMessage());
      err.flush();
      log.close();
      return Main.CONFIG_ERROR;
    }
    server.boundAddresses().forEach((name, addr) -> out.println("egress-proxy: listener '" + name
        + "' on " + addr.getAddress().getHostAddress() + ":" + addr.getPort() + " ("
        + transport.name() + ")"));
    java.util.concurrent.atomic.AtomicBoolean stopping =
        new java.util.concurrent.atomic.AtomicBoolean();
    AdminServer admin = null;
    if (loaded.config().adminBind() != null) {
      try {
        admin = new AdminServer(loaded.config().adminBind(), transport, metrics, decider,
            () -> !stopping.get());
        out.println("egress-proxy: admin on " + admin.address().getAddress().getHostAddress()
            + ":" + admin.address().getPort() + " (/metrics, /healthz, /readyz, /check)");
      } catch (Exception e) {
        err.println("egress-proxy: cannot bind the admin listener to "
            + loaded.config().adminBind() + ": " + e.getMessage());
        err.flush();
        server.close();
        log.close();
        return Main.CONFIG_ERROR;
      }
    }
    out.println("egress-proxy: ready. SIGHUP reloads the policy; SIGTERM stops.");
    out.flush();

    CountDownLatch stop = new CountDownLatch(1);
    ExecutorService reloads = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "policy-reload");
      t.setDaemon(true);
      return t;
    });
    Signal.handle(new Signal("TERM"), s -> stop.countDown());
    Signal.handle(new Signal("INT"), s -> stop.countDown());
    Signal.handle(new Signal("HUP"), s -> reloads.execute(() -> reload(decider, out, err)));
    try {
      stop.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    reloads.shutdownNow();
    stopping.set(true);
    if (admin != null) {
      admin.close();
    }
    server.close();
    log.close();
    out.println("egress-proxy: stopped");
    out.flush();
    return Main.OK;
  }

  private void reload(Decider decider, PrintWriter out, PrintWriter err) {
    try {
      PolicyLoader.Loaded next = PolicyLoader.load(main.config);
      CommonOptions.printWarnings(next.problems(), err);
      decider.install(next.policy());
      out.println("egress-proxy: reloaded: " + describe(next.policy()));
    } catch (ConfigException e) {
      for (Problems.Problem p : e.problems().all()) {
        err.println(p);
      }
      err.println("egress-proxy: reload failed; still serving policy generation "
          + decider.policy().generation());
    }
    out.flush();
    err.flush();
  }

  static String describe(CompiledPolicy p) {
    return "policy generation " + p.generation() + " (" + p.mode().name().toLowerCase() + "): "
        + p.catalogs().size() + " catalogs, " + p.ruleCount() + " rules";
  }
}
