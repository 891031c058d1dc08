package org.egressproxy.cli;

import java.io.PrintWriter;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.Problems;
import org.egressproxy.policy.PolicyLoader;

/** Loading the policy the same way for every command, and printing problems the same way. */
final class CommonOptions {
  private CommonOptions() {}

  /** Loads the configuration; on error prints every problem to {@code err} and returns null. */
  static PolicyLoader.Loaded load(Main main, PrintWriter err) {
    try {
      PolicyLoader.Loaded loaded = PolicyLoader.load(main.config);
      printWarnings(loaded.problems(), err);
      return loaded;
    } catch (ConfigException e) {
      for (Problems.Problem p : e.problems().all()) {
        err.println(p);
      }
      err.println("configuration error: " + e.errors().size() + " problem"
          + (e.errors().size() == 1 ? "" : "s") + "; nothing was started");
      err.flush();
      return null;
    }
  }

  static void printWarnings(Problems problems, PrintWriter err) {
    for (Problems.Problem p : problems.warnings()) {
      err.println(p);
    }
    err.flush();
  }
}
