package org.egressproxy.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * {@code java -jar egress-proxy.jar [COMMAND] [--config FILE]}: {@code run} (the default),
 * {@code check}, {@code validate}, {@code catalogs}. Exit status: 0 success, 1 a {@code check}
 * denied something, 2 a configuration error (or a usage error).
 */
@Command(
    name = "egress-proxy",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "Transparent egress proxy for locked-down Kubernetes clusters.",
    subcommands = {RunCommand.class, CheckCommand.class, ValidateCommand.class,
        CatalogsCommand.class, ExportCommand.class, HashCommand.class},
    footer = {"", "Without a command, 'run' is assumed. Without --config, the embedded default"
        + " applies."})
public final class Main implements Callable<Integer> {
  public static final int OK = 0;
  public static final int DENIED = 1;
  public static final int CONFIG_ERROR = 2;

  @Option(names = {"-c", "--config"}, paramLabel = "FILE", scope = ScopeType.INHERIT,
      description = "Configuration file (YAML). Default: the embedded default configuration.")
  Path config;

  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    RunCommand run = new RunCommand();
    run.main = this;
    run.err = spec.commandLine().getErr();
    return run.call();
  }

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** Runs the command line and returns the exit status. */
  public static int execute(String... args) {
    return execute(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
  }

  /** Runs the command line with the given output streams (tests call this). */
  public static int execute(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cl = new CommandLine(new Main());
    cl.setOut(out);
    cl.setErr(err);
    cl.setExecutionExceptionHandler((ex, line, parsed) -> {
      line.getErr().println("egress-proxy: " + ex);
      return CONFIG_ERROR;
    });
    cl.setParameterExceptionHandler((ex, a) -> {
      ex.getCommandLine().getErr().println(ex.getMessage());
      ex.getCommandLine().usage(ex.getCommandLine().getErr());
      return CONFIG_ERROR;
    });
    int status = cl.execute(args);
    out.flush();
    err.flush();
    return status;
  }

  /** The version from the jar's manifest. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Main.class.getPackage().getImplementationVersion();
      return new String[] {"egress-proxy " + (v == null ? "(development build)" : v)};
    }
  }
}
