package org.egressproxy.policy;

import org.egressproxy.config.SourceRef;
import org.egressproxy.match.MatchEntry;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;

/**
 * A compiled rule: allow or deny one pattern (name or CIDR) on some ports and protocols, from a
 * catalog or from the local {@code policy.rules}. Immutable; carries the decision it produces,
 * so that deciding allocates nothing.
 */
public final class Rule implements MatchEntry {
  /** The catalog name given to rules written under {@code policy.rules}. */
  public static final String LOCAL = "local";

  private final boolean deny;
  private final String pattern;
  private final String catalog;
  private final PortSet ports;
  private final int protocols;
  private final SourceRef at;
  private final Context context;
  private Decision decision; // made on first use: most of a large policy's rules never decide

  /** What every rule of one compiled policy shares. */
  record Context(boolean enforced, long generation) {}

  Rule(boolean deny, String pattern, String catalog, PortSet ports, int protocols, SourceRef at,
      Context context) {
    this.deny = deny;
    this.pattern = pattern;
    this.catalog = catalog;
    this.ports = ports;
    this.protocols = protocols;
    this.at = at;
    this.context = context;
  }

  @Override
  public boolean isDeny() {
    return deny;
  }

  @Override
  public boolean accepts(int port, int protocol) {
    return (protocols & protocol) != 0 && ports.contains(port);
  }

  /** The pattern with variables filled in, as a decision names it. */
  public String pattern() {
    return pattern;
  }

  /** The catalog it came from, or {@value #LOCAL}. */
  public String catalog() {
    return catalog;
  }

  public PortSet ports() {
    return ports;
  }

  public int protocols() {
    return protocols;
  }

  /** Where the rule was written. */
  public SourceRef at() {
    return at;
  }

  /**
   * The decision this rule makes. Created lazily; two threads racing here each get an equal,
   * immutable decision (its fields are final), so no lock is needed.
   */
  Decision decision() {
    Decision d = decision;
    if (d == null) {
      d = deny
          ? new Decision(false, Reason.DENY_RULE, this, context.enforced(), context.generation())
          : new Decision(true, Reason.RULE, this, true, context.generation());
      decision = d;
    }
    return d;
  }

  /** {@code tls}, {@code http} or {@code tls,http}. */
  public String protocolText() {
    return Protocol.describe(protocols);
  }

  @Override
  public String toString() {
    return (deny ? "deny " : "allow ") + pattern + " ports=" + ports + " protocol="
        + protocolText() + " catalog=" + catalog;
  }
}
