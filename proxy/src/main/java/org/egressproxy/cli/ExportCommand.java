package org.egressproxy.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import org.egressproxy.config.Config;
import org.egressproxy.log.Json;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.HostName;
import org.egressproxy.policy.PolicyLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/**
 * Writes the clients' side of the configuration from the running one: AKS's
 * {@code --http-proxy-config} JSON, or the proxy section of Nova's deployment configuration.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class, description = {
    "Write the nodes' proxy settings for this proxy:",
    "  aks   the JSON for az aks create/update --http-proxy-config",
    "  nova  the proxy section for nova-deployment-conf.yaml"})
final class ExportCommand implements Callable<Integer> {
  /** Always reached directly: loopback, Azure's metadata service and wire server, the cluster. */
  static final List<String> DEFAULT_NO_PROXY = List.of("localhost", "127.0.0.1",
      "169.254.169.254", "168.63.129.16", ".svc", ".cluster.local");

  @ParentCommand Main main;
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "aks|nova", description = "What to write.")
  String target;

  @Option(names = "--proxy-address", required = true, paramLabel = "IP-OR-NAME",
      description = "Where the nodes reach this proxy (e.g. the internal load balancer's IP).")
  String address;

  @Option(names = "--no-proxy", paramLabel = "ENTRY", split = ",",
      description = "More destinations reached directly: IPs, CIDRs (cluster and service CIDRs),"
          + " domains. '*.example.com' is written as '.example.com' (AKS rejects '*').")
  List<String> noProxy = new ArrayList<>();

  @Option(names = "--trusted-ca", paramLabel = "PEM",
      description = "CA certificate(s) the nodes should trust (AKS trustedCa).")
  Path trustedCa;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    if (!target.equals("aks") && !target.equals("nova")) {
      err.println("export: write 'aks' or 'nova', not '" + target + "'");
      return Main.CONFIG_ERROR;
    }
    PolicyLoader.Loaded loaded = CommonOptions.load(main, err);
    if (loaded == null) {
      return Main.CONFIG_ERROR;
    }
    Config.Listener explicit = loaded.config().listeners().stream()
        .filter(l -> l.mode() == Config.Listener.Mode.HTTP_PROXY).findFirst().orElse(null);
    if (explicit == null) {
      err.println("export: the configuration has no http-proxy listener for the nodes to use");
      return Main.CONFIG_ERROR;
    }
    String host = proxyHost(address.strip());
    if (host == null) {
      err.println("export: --proxy-address '" + address + "' is not an IP address or a host"
          + " name; give it without a scheme or port (the port is the http-proxy listener's, "
          + explicit.bind().port() + ")");
      return Main.CONFIG_ERROR;
    }
    String url = (explicit.tls() != null ? "https://" : "http://") + host + ":"
        + explicit.bind().port() + "/";
    if (trustedCa == null && explicit.tls() != null && explicit.tls().selfSigned()
        && Files.exists(explicit.tls().dir().resolve("ca.pem"))) {
      trustedCa = explicit.tls().dir().resolve("ca.pem"); // the CA this proxy made for itself
    }
    Set<String> entries = new LinkedHashSet<>(DEFAULT_NO_PROXY);
    for (String e : noProxy) {
      String n = noProxyEntry(e.strip());
      if (n == null) {
        err.println("export: --no-proxy '" + e + "' is not an IP, a CIDR or a domain");
        return Main.CONFIG_ERROR;
      }
      entries.add(n);
    }
    String ca = null;
    if (trustedCa != null) {
      try {
        String pem = Files.readString(trustedCa, StandardCharsets.US_ASCII);
        if (!pem.contains("-----BEGIN CERTIFICATE-----")) {
          err.println("export: " + trustedCa + " holds no PEM certificate");
          return Main.CONFIG_ERROR;
        }
        ca = Base64.getEncoder().encodeToString(pem.getBytes(StandardCharsets.US_ASCII));
      } catch (IOException e) {
        err.println("export: cannot read " + trustedCa + ": " + e.getMessage());
        return Main.CONFIG_ERROR;
      }
    }
    out.print(target.equals("aks") ? aks(url, entries, ca) : nova(url, entries));
    out.flush();
    return Main.OK;
  }

  /** The proxy URL's host for {@code a}: an IP (IPv6 in brackets) or a host name; else null. */
  static String proxyHost(String a) {
    org.egressproxy.match.IpLiteral ip = org.egressproxy.match.IpLiteral.parse(a);
    if (ip != null) {
      return ip.isIpv4() ? ip.toString() : "[" + ip + "]";
    }
    if (a.indexOf(':') >= 0 || a.indexOf('[') >= 0 || Cidr.looksLikeCidr(a)) {
      return null; // a port, a scheme, a broken IPv6 address, 10.0.0.4/32, 10.0.4
    }
    return HostName.normalize(a);
  }

  /** An entry in the form AKS and Go's NO_PROXY accept, or null. */
  static String noProxyEntry(String e) {
    if (e.isEmpty()) {
      return null;
    }
    if (Cidr.looksLikeCidr(e)) {
      try {
        Cidr c = Cidr.parse(e);
        return e.indexOf('/') >= 0 ? c.toString() : c.network().toString();
      } catch (org.egressproxy.match.PatternException x) {
        return null;
      }
    }
    String domain = e.startsWith("*.") ? e.substring(2) : e.startsWith(".") ? e.substring(1) : e;
    String n = HostName.normalize(domain);
    if (n == null) {
      return null;
    }
    return e.startsWith("*.") || e.startsWith(".") ? "." + n : n;
  }

  static String aks(String url, Set<String> noProxy, String ca) {
    StringBuilder sb = new StringBuilder("{\n  \"httpProxy\": ").append(Json.quote(url))
        .append(",\n  \"httpsProxy\": ").append(Json.quote(url))
        .append(",\n  \"noProxy\": [");
    int i = 0;
    for (String e : noProxy) {
      sb.append(i++ > 0 ? ", " : "").append(Json.quote(e));
    }
    sb.append(']');
    if (ca != null) {
      sb.append(",\n  \"trustedCa\": ").append(Json.quote(ca));
    }
    return sb.append("\n}\n").toString();
  }

  static String nova(String url, Set<String> noProxy) {
    return "# Proxy settings for the nodes (nova-deployment-conf.yaml). Nodes must also be allowed\n"
        + "# to reach the proxy through the firewall (Nova network preparation, 3.1.5).\n"
        + "proxy:\n  httpProxy: " + url + "\n  httpsProxy: " + url + "\n  noProxy: \""
        + String.join(",", noProxy) + "\"\n";
  }
}
