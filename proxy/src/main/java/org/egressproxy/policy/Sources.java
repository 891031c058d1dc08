package org.egressproxy.policy;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.egressproxy.auth.Credential;
import org.egressproxy.auth.Credentials;
import org.egressproxy.config.Config;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.CidrTrie;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;

/**
 * Who the client is, and so which compiled policy decides for it. Without {@code
 * policy.sources} there is one source, {@value #DEFAULT}, with the top-level policy, and every
 * client is it. With sources, they are tried in order: the first whose {@code clients} contain the
 * client's address (or that has none) and whose credentials the client presented (or that needs
 * none) is the client's source. A client that matches none is refused: {@code 407} where proxy
 * credentials would have helped, {@code 403} otherwise. Immutable; a reload builds a new one.
 */
public final class Sources {
  /** The source name when {@code policy.sources} is not set. */
  public static final String DEFAULT = "default";

  /** Reasons for refusing a client before any destination is decided. */
  public static final String AUTH_REQUIRED = "auth-required";
  public static final String AUTH_FAILED = "auth-failed";
  public static final String NO_SOURCE = "no-source";
  /** The client's source has {@code maxConnections} open already. */
  public static final String SOURCE_LIMIT = "source-limit";

  /** A source with its compiled policy; {@code index} keys its decisions in the cache. */
  public static final class Source {
    private final String name;
    private final int index;
    private final CidrTrie<Rule> clients; // null: any client address
    private final Set<String> users;
    private final Set<String> tokens;
    private final CompiledPolicy policy;
    private final int maxConnections;

    Source(Config.Source s, int index, CompiledPolicy policy) {
      this.name = s.name();
      this.maxConnections = s.maxConnections();
      this.index = index;
      this.policy = policy;
      if (s.clients().isEmpty()) {
        this.clients = null;
      } else {
        CidrTrie.Builder<Rule> b = CidrTrie.builder(Rule.class);
        for (Cidr c : s.clients()) {
          b.add(c, new Rule(false, c.toString(), name, PortSet.ALL, Protocol.ANY, s.at(),
              new Rule.Context(true, policy.generation())));
        }
        this.clients = b.build();
      }
      this.users = new HashSet<>();
      s.users().forEach(u -> users.add(u.name()));
      this.tokens = new HashSet<>();
      s.tokens().forEach(t -> tokens.add(t.name()));
    }

    private Source(String name, CompiledPolicy policy) {
      this.name = name;
      this.index = 0;
      this.clients = null;
      this.users = Set.of();
      this.tokens = Set.of();
      this.policy = policy;
      this.maxConnections = Config.Source.NO_LIMIT;
    }

    /** Open client connections this source may have at once ({@code limits:} apply too). */
    public int maxConnections() {
      return maxConnections;
    }

    /** This identity, refused because the source is at its {@code maxConnections}. */
    public Identity overLimit(String user) {
      return new Identity(this, user, SOURCE_LIMIT);
    }

    public String name() {
      return name;
    }

    public int index() {
      return index;
    }

    public CompiledPolicy policy() {
      return policy;
    }

    boolean coversAddress(IpLiteral client) {
      return clients == null || (client != null && clients.covers(client));
    }

    boolean needsCredentials() {
      return !users.isEmpty() || !tokens.isEmpty();
    }

    boolean accepts(Credential c) {
      return switch (c.kind()) {
        case USER -> users.contains(c.name());
        case TOKEN -> tokens.contains(c.name());
        default -> false;
      };
    }
  }

  /**
   * The outcome of identifying a client: its source (null when there is none), the user or
   * token name it proved, and the refusal reason ({@link #AUTH_REQUIRED}, {@link #AUTH_FAILED},
   * {@link #NO_SOURCE}; {@link #SOURCE_LIMIT} with the source set) when it is refused.
   */
  public record Identity(Source source, String user, String refusal) {
    /** 407 rather than 403: credentials would help. */
    public boolean challenge() {
      return AUTH_REQUIRED.equals(refusal) || AUTH_FAILED.equals(refusal);
    }
  }

  private final CompiledPolicy base;
  private final List<Source> sources;
  private final Credentials credentials;
  private final Identity everyone;

  Sources(CompiledPolicy base, List<Source> sources, Credentials credentials) {
    this.base = base;
    this.sources = List.copyOf(sources);
    this.credentials = credentials;
    this.everyone = new Identity(new Source(DEFAULT, base), null, null);
  }

  /** One source, {@value #DEFAULT}, for every client: no {@code policy.sources}. */
  public static Sources of(CompiledPolicy base) {
    return new Sources(base, List.of(), Credentials.NONE);
  }

  /** True when {@code policy.sources} is set. */
  public boolean configured() {
    return !sources.isEmpty();
  }

  /** The top-level policy ({@code check} and {@code /check} without a source decide with it). */
  public CompiledPolicy base() {
    return base;
  }

  public List<Source> list() {
    return sources;
  }

  public Source find(String name) {
    for (Source s : sources) {
      if (s.name.equals(name)) {
        return s;
      }
    }
    return DEFAULT.equals(name) && !configured() ? everyone.source() : null;
  }

  public Credentials credentials() {
    return credentials;
  }

  /**
   * The client's identity.
   *
   * @param client the client's address
   * @param presented the credential it presented and proved (or {@link Credential#NONE})
   * @param canAuthenticate true where the client could send proxy credentials (the http-proxy
   *     listener), so that a missing or wrong one earns a 407
   */
  public Identity identify(IpLiteral client, Credential presented, boolean canAuthenticate) {
    if (sources.isEmpty()) {
      return everyone;
    }
    boolean credentialsWouldHelp = false;
    for (Source s : sources) {
      if (!s.coversAddress(client)) {
        continue;
      }
      if (!s.needsCredentials() || s.accepts(presented)) {
        return new Identity(s, presented.proven() ? presented.name() : null, null);
      }
      credentialsWouldHelp = true;
    }
    if (canAuthenticate && credentialsWouldHelp) {
      return new Identity(null, presented.name(),
          presented.kind() == Credential.Kind.NONE ? AUTH_REQUIRED : AUTH_FAILED);
    }
    return new Identity(null, presented.name(), NO_SOURCE);
  }
}
