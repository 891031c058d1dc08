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
  private final Decision decision;

  Rule(boolean deny, String pattern, String catalog, PortSet ports, int protocols, SourceRef at,
      boolean enforced, long generation) {
    this.deny = deny;
    this.pattern = pattern;
    this.catalog = catalog;
    this.ports = ports;
    this.protocols = protocols;
    this.at = at;
    this.decision = deny
        ? new Decision(false, Reason.DENY_RULE, this, enforced, generation)
        : new Decision(true, Reason.RULE, this, true, generation);
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

  Decision decision() {
    return decision;
  }

  /** {@code tls}, {@code http} or {@code tls,http}. */
  public String protocolText() {
    StringBuilder sb = new StringBuilder();
    for (Protocol p : Protocol.values()) {
      if ((protocols & p.bit()) != 0) {
        sb.append(sb.length() == 0 ? "" : ",").append(p.id());
      }
    }
    return sb.toString();
  }

  @Override
  public String toString() {
    return (deny ? "deny " : "allow ") + pattern + " ports=" + ports + " protocol="
        + protocolText() + " catalog=" + catalog;
  }
}
