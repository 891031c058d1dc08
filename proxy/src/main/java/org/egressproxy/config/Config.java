package org.egressproxy.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.PortSet;

/**
 * The validated configuration: an immutable snapshot of the YAML file (or of the embedded
 * default). Policy-level meaning (patterns, catalogs) is checked when the policy is compiled.
 */
public record Config(
    String file,
    List<Listener> listeners,
    HostPort adminBind,
    List<Variable> variables,
    Policy policy,
    Map<String, IpLiteral> resolverHosts,
    List<HostPort> resolverServers,
    String decisionLogPath,
    int cacheMaxEntries,
    Timeouts timeouts,
    Tunnel tunnel,
    Duration shutdownDrain,
    ParentProxy parentProxy,
    Limits limits) {

  /** {@code limits:}: open client connections, in total and from one client address. */
  public record Limits(int maxConnections, int maxConnectionsPerClient) {
    public static final Limits DEFAULTS = new Limits(50_000, 5_000);
  }

  /**
   * {@code upstream.proxy}: allowed traffic leaves through this proxy (HTTP CONNECT or SOCKS5),
   * except destinations matching {@code upstream.noProxy} (name patterns or CIDRs).
   */
  public record ParentProxy(String scheme, String host, int port, List<String> noProxy,
      SourceRef at) {}

  /**
   * The keys whose values differ between this (running) configuration and {@code next} but that
   * a reload does not apply: everything outside {@code variables} and {@code policy}, which the
   * proxy reads once, at start. Empty when only the policy changed.
   */
  public List<String> restartOnlyChanges(Config next) {
    List<String> changed = new java.util.ArrayList<>();
    java.util.function.Function<List<Listener>, List<Listener>> noLines = ls -> ls.stream()
        .map(l -> new Listener(l.name(), l.mode(), l.bind(), l.upstreamPort(), l.tls(),
            l.transparent(), null)).toList();
    java.util.function.Function<ParentProxy, ParentProxy> noLine = p -> p == null ? null
        : new ParentProxy(p.scheme(), p.host(), p.port(), p.noProxy(), null);
    check(changed, "listeners", noLines.apply(listeners), noLines.apply(next.listeners));
    check(changed, "admin", adminBind, next.adminBind);
    check(changed, "resolver.hosts", resolverHosts, next.resolverHosts);
    check(changed, "resolver.servers", resolverServers, next.resolverServers);
    check(changed, "decisionLog", decisionLogPath, next.decisionLogPath);
    check(changed, "cache", cacheMaxEntries, next.cacheMaxEntries);
    check(changed, "timeouts", timeouts, next.timeouts);
    check(changed, "tunnel", tunnel, next.tunnel);
    check(changed, "shutdown", shutdownDrain, next.shutdownDrain);
    check(changed, "upstream", noLine.apply(parentProxy), noLine.apply(next.parentProxy));
    check(changed, "limits", limits, next.limits);
    return changed;
  }

  private static void check(List<String> changed, String key, Object running, Object next) {
    if (!java.util.Objects.equals(running, next)) {
      changed.add(key);
    }
  }

  public static final Duration DEFAULT_SHUTDOWN_DRAIN = Duration.ofSeconds(30);

  public static final int DEFAULT_CACHE_MAX_ENTRIES = 100_000;

  /**
   * {@code timeouts:}; every one explicit, none "0 = unlimited". {@code requestHead}: time for an
   * HTTP client to send a whole request head (from the connection's start, then from the first
   * byte of each later request), so slow senders cannot hold connections. {@code response}: time
   * for an origin to start its answer to a forwarded HTTP request (from the request sent whole
   * to the answer's head), else 504.
   */
  public record Timeouts(Duration connect, Duration clientHello, Duration idle, Duration dns,
      Duration requestHead, Duration response) {
    public static final Timeouts DEFAULTS = new Timeouts(Duration.ofSeconds(10),
        Duration.ofSeconds(10), Duration.ofHours(1), Duration.ofSeconds(5),
        Duration.ofSeconds(10), Duration.ofMinutes(5));
  }

  /**
   * {@code tunnel:}: whether a CONNECT tunnel's ClientHello must name the CONNECT host, and
   * whether a ClientHello with an Encrypted Client Hello extension is refused (it hides the
   * inner name; Chrome sends the extension as GREASE, so refusing it refuses every Chrome), and
   * whether bulk tunnel directions splice (epoll; measured slower than copying on some
   * machines, faster on others: benchmarks/RESULTS.md).
   */
  public record Tunnel(boolean requireSniMatch, boolean refuseEch, boolean splice) {
    public static final Tunnel DEFAULTS = new Tunnel(true, false, false);
  }

  /** {@code tunnel.requireSniMatch}. */
  public boolean requireSniMatch() {
    return tunnel.requireSniMatch();
  }

  /**
   * A listener and how it takes its traffic. {@code transparent} (tls-sni and http-host only):
   * the listening socket takes connections TPROXY hands it, addressed to other hosts
   * ({@code IP_TRANSPARENT}); each connection's local address is then its original destination.
   */
  public record Listener(String name, Mode mode, HostPort bind, int upstreamPort, Tls tls,
      boolean transparent, SourceRef at) {
    /**
     * {@code tls:} on an http-proxy listener (an HTTPS proxy): PEM certificate chain and key
     * files, or {@code selfSigned: true}, which creates a CA and a serving certificate in
     * {@code dir} on first start and reuses them.
     */
    public record Tls(Path certFile, Path keyFile, boolean selfSigned, Path dir,
        List<String> names) {}

    public enum Mode {
      HTTP_PROXY("http-proxy"),
      TLS_SNI("tls-sni"),
      HTTP_HOST("http-host");

      private final String id;

      Mode(String id) {
        this.id = id;
      }

      public String id() {
        return id;
      }

      public static Mode fromId(String id) {
        for (Mode m : values()) {
          if (m.id.equals(id)) {
            return m;
          }
        }
        return null;
      }
    }
  }

  /** A value for {@code {name}} in patterns. {@code *} stands for any one label. */
  public record Variable(String name, String value, SourceRef at) {}

  /** Whether denials are enforced or only reported. */
  public enum EnforcementMode {
    ENFORCE,
    REPORT
  }

  /** A catalog named in {@code policy.catalogs}. */
  public record CatalogRef(String name, SourceRef at) {}

  /** A directory named in {@code policy.catalogDirs}. */
  public record CatalogDir(Path path, SourceRef at) {}

  /**
   * A rule under {@code policy.rules}: {@code allow:} or {@code deny:} a name pattern or a CIDR.
   * {@code ports == null} means the default (443 for allow, every port for deny); {@code
   * protocols} is a bit set of {@link org.egressproxy.match.Protocol}.
   */
  public record LocalRule(boolean deny, String pattern, PortSet ports, int protocols, SourceRef at) {}

  /**
   * The {@code policy:} section. {@code sources} is empty when the section has none: every
   * client then gets the top-level catalogs and rules.
   */
  public record Policy(
      EnforcementMode mode,
      List<CatalogRef> catalogs,
      List<CatalogDir> catalogDirs,
      List<LocalRule> rules,
      List<Cidr> allowDestinationCidrs,
      List<Source> sources) {
    public Policy(EnforcementMode mode, List<CatalogRef> catalogs, List<CatalogDir> catalogDirs,
        List<LocalRule> rules, List<Cidr> allowDestinationCidrs) {
      this(mode, catalogs, catalogDirs, rules, allowDestinationCidrs, List.of());
    }
  }

  /**
   * A named group of clients under {@code policy.sources}: matched by client address ({@code
   * clients}) and/or proxy credentials ({@code users}, {@code tokens}); its policy is the
   * top-level catalogs and rules plus its own; {@code maxConnections} bounds the client
   * connections placed in it at once.
   */
  public record Source(String name, List<Cidr> clients, List<User> users, List<Token> tokens,
      List<CatalogRef> catalogs, List<LocalRule> rules, int maxConnections, SourceRef at) {
    /** {@code maxConnections} when the source sets none: only {@code limits:} apply. */
    public static final int NO_LIMIT = Integer.MAX_VALUE;

    public boolean needsCredentials() {
      return !users.isEmpty() || !tokens.isEmpty();
    }
  }

  /** A {@code Proxy-Authorization: Basic} user and its bcrypt or Argon2 password hash. */
  public record User(String name, String passwordHash, SourceRef at) {}

  /** A {@code Proxy-Authorization: Bearer} token, stored as the hex SHA-256 of the token. */
  public record Token(String name, String sha256, SourceRef at) {}
}
