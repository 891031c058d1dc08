package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Callable;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.Problems;
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
    out.println("egress-proxy: the data plane is not built yet; the policy is loaded and"
        + " checked. Waiting for SIGTERM (SIGHUP reloads).");
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
