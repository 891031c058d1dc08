package org.egressproxy.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import org.egressproxy.http.Authority;
import org.egressproxy.match.Protocol;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.egressproxy.policy.PolicyLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/**
 * Decides destinations offline, one line each. No DNS: a name is matched against name rules, an
 * IP literal against CIDR rules and the private ranges.
 */
@Command(name = "check", mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class, description = {
    "Decide destinations offline (no DNS, no network), one line each.",
    "Exit 0 when all are allowed, 1 when any is denied, 2 on a configuration error."})
final class CheckCommand implements Callable<Integer> {
  @ParentCommand Main main;
  @Spec CommandSpec spec;

  @Parameters(arity = "1..*", paramLabel = "HOST[:PORT]",
      description = "A name or IP literal ([v6]:port for IPv6 with a port). PORT defaults to 443.")
  List<String> destinations;

  @Option(names = "--protocol", paramLabel = "tls|http",
      description = "What the connection carries. Default: http for port 80, tls otherwise.")
  String protocol;

  @Option(names = "--source", paramLabel = "NAME",
      description = "Decide with this policy.sources entry's policy (the top-level catalogs and"
          + " rules plus its own). Default: the top-level policy.")
  String source;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Protocol forced = null;
    if (protocol != null) {
      forced = Protocol.fromId(protocol);
      if (forced == null) {
        err.println("--protocol must be tls or http, not '" + protocol + "'");
        return Main.CONFIG_ERROR;
      }
    }
    PolicyLoader.Loaded loaded = CommonOptions.load(main, err);
    if (loaded == null) {
      return Main.CONFIG_ERROR;
    }
    org.egressproxy.policy.CompiledPolicy policy = loaded.policy();
    if (source != null) {
      org.egressproxy.policy.Sources.Source s = loaded.sources().find(source);
      if (s == null) {
        err.println("no source '" + source + "' in policy.sources; known: " + (loaded.sources()
            .configured() ? String.join(", ", loaded.sources().list().stream()
                .map(org.egressproxy.policy.Sources.Source::name).toList())
            : "none (policy.sources is not set)"));
        return Main.CONFIG_ERROR;
      }
      policy = s.policy();
    }
    boolean anyDenied = false;
    for (String arg : destinations) {
      Authority hp = parse(arg);
      if (hp == null) {
        err.println("'" + arg + "' is not HOST[:PORT] (PORT 1-65535; write [v6]:PORT for IPv6)");
        return Main.CONFIG_ERROR;
      }
      Protocol p = forced != null ? forced : hp.port() == 80 ? Protocol.HTTP : Protocol.TLS;
      Destination d = Destination.of(hp.host(), hp.port(), p);
      Decision decision = policy.decide(d);
      anyDenied |= !decision.allowed();
      out.println(format(d, decision));
    }
    out.flush();
    return anyDenied ? Main.DENIED : Main.OK;
  }

  static String format(Destination d, Decision decision) {
    StringBuilder sb = new StringBuilder();
    sb.append(decision.allowed() ? "ALLOW " : "DENY ").append(d).append(' ')
        .append(d.protocol().id()).append(" reason=").append(decision.reason().id());
    if (decision.rule() != null) {
      sb.append(" rule=").append(decision.rule().pattern())
          .append(" catalog=").append(decision.rule().catalog());
    }
    if (!decision.enforced()) {
      sb.append(" enforced=false (report mode: forwarded all the same)");
    }
    return sb.toString();
  }

  /** {@code host}, {@code host:port}, {@code [v6]}, {@code [v6]:port} or a bare IPv6 literal. */
  static Authority parse(String s) {
    if (!s.startsWith("[") && s.indexOf(':') != s.lastIndexOf(':')) {
      return new Authority(s, 443); // a bare IPv6 literal: no port possible
    }
    return Authority.parse(s, 443);
  }
}
