package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import org.egressproxy.policy.PolicyLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/** Loads configuration and catalogs and prints every problem as FILE:LINE: message. */
@Command(name = "validate", mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class, description = {
    "Load configuration and catalogs; print problems as FILE:LINE: message.",
    "Exit 0 when valid (warnings allowed), 2 when invalid."})
final class ValidateCommand implements Callable<Integer> {
  @ParentCommand Main main;
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PolicyLoader.Loaded loaded = CommonOptions.load(main, spec.commandLine().getErr());
    if (loaded == null) {
      return Main.CONFIG_ERROR;
    }
    out.println("OK " + loaded.config().file() + ": " + loaded.config().listeners().size()
        + " listeners, " + ProxyService.describe(loaded.sources())
        + (loaded.problems().warnings().isEmpty() ? ""
            : ", " + loaded.problems().warnings().size() + " warnings"));
    out.flush();
    return Main.OK;
  }
}
