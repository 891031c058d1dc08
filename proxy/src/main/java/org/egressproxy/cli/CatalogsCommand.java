package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import org.egressproxy.catalog.Catalog;
import org.egressproxy.match.Protocol;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.PolicyLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/** Lists catalogs, their rule counts and variables, and the network rules the proxy cannot carry. */
@Command(name = "catalogs", mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class, description =
    "List the catalogs (built in and in catalogDirs) with rule counts and variables, and the"
        + " informational network rules the proxy does not enforce. With names: each catalog's"
        + " rules.")
final class CatalogsCommand implements Callable<Integer> {
  @ParentCommand Main main;
  @Spec CommandSpec spec;

  @Parameters(arity = "0..*", paramLabel = "NAME", description = "Show these catalogs in full.")
  List<String> names = new ArrayList<>();

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    PolicyLoader.Loaded loaded = CommonOptions.load(main, err);
    if (loaded == null) {
      return Main.CONFIG_ERROR;
    }
    Set<String> inUse = loaded.policy().catalogs().stream().map(u -> u.catalog().name())
        .collect(Collectors.toSet());
    if (!names.isEmpty()) {
      for (String n : names) {
        Catalog c = loaded.catalogs().get(n);
        if (c == null) {
          err.println("unknown catalog '" + n + "'; known: " + String.join(", ",
              loaded.catalogs().names()));
          return Main.CONFIG_ERROR;
        }
        detail(out, c, inUse.contains(n));
      }
      out.flush();
      return Main.OK;
    }
    out.printf("%-30s %5s %5s  %-16s %-6s %s%n", "CATALOG", "RULES", "INFO", "VARIABLES", "IN USE",
        "ORIGIN");
    for (Catalog c : loaded.catalogs().all()) {
      out.printf("%-30s %5d %5d  %-16s %-6s %s%n", c.name(), c.rules().size(),
          c.informational().size(), c.variables().isEmpty() ? "-" : String.join(",", c.variables()),
          inUse.contains(c.name()) ? "yes" : "-", c.origin());
    }
    out.println();
    out.println("Informational network rules (firewall rules the proxy cannot carry; not enforced):");
    for (Catalog c : loaded.catalogs().all()) {
      for (Catalog.Info i : c.informational()) {
        out.printf("  %-28s %s/%s  %s — %s%n", c.name(), i.protocol(), i.ports(), i.destination(),
            i.purpose());
      }
    }
    for (CompiledPolicy.CatalogUse u : loaded.policy().catalogs()) {
      if (!u.disabledRules().isEmpty()) {
        out.println();
        out.println("Disabled in " + u.catalog().name() + " (variable not set): "
            + String.join(", ", u.disabledRules()));
      }
    }
    out.flush();
    return Main.OK;
  }

  private static void detail(PrintWriter out, Catalog c, boolean inUse) {
    out.println(c.name() + (inUse ? " (in use)" : "") + " — " + c.description());
    out.println("  source: " + c.source() + (c.sections().isEmpty() ? ""
        : " § " + String.join(" § ", c.sections())));
    out.println("  origin: " + c.origin());
    out.println("  variables: " + (c.variables().isEmpty() ? "-" : String.join(", ",
        c.variables())));
    out.println("  rules:");
    for (Catalog.Rule r : c.rules()) {
      out.printf("    %-50s %-5s %-8s %s%n", r.pattern(), Protocol.describe(r.protocols()), r.ports(),
          r.purpose());
    }
    if (!c.informational().isEmpty()) {
      out.println("  informational (not enforced):");
      for (Catalog.Info i : c.informational()) {
        out.printf("    %-50s %-5s %-8s %s%n", i.destination(), i.protocol(), i.ports(),
            i.purpose());
      }
    }
    out.println();
  }
}
