package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/**
 * Serves until SIGTERM or SIGINT (exit 0 after draining); SIGHUP or a changed file reloads the
 * configuration, keeping the old policy when the new one has errors. Exit 2 when the
 * configuration is invalid or a listener cannot bind at start.
 */
@Command(name = "run", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Serve until SIGTERM/SIGINT; SIGHUP reloads (the default).")
final class RunCommand implements Callable<Integer> {
  @ParentCommand Main main;
  @Spec CommandSpec spec;
  /** Problems and lifecycle lines; standard output is left to {@code decisionLog.path: "-"}. */
  PrintWriter err;

  @Override
  public Integer call() {
    if (spec != null) {
      err = spec.commandLine().getErr();
    }
    return new ProxyService(main.config, err).run();
  }
}
