package org.egressproxy.policy;

/**
 * The outcome of deciding one destination: allow or deny, the reason, and the rule (with its
 * catalog) behind it. In report mode a policy denial is {@code enforced == false}: logged and
 * counted as a deny, but the traffic goes through. Shared and immutable.
 */
public final class Decision {
  private final boolean allowed;
  private final Reason reason;
  private final Rule rule;
  private final boolean enforced;
  private final long generation;

  Decision(boolean allowed, Reason reason, Rule rule, boolean enforced, long generation) {
    this.allowed = allowed;
    this.reason = reason;
    this.rule = rule;
    this.enforced = enforced;
    this.generation = generation;
  }

  public boolean allowed() {
    return allowed;
  }

  /** Whether the proxy forwards the traffic: allowed, or denied in report mode. */
  public boolean forward() {
    return allowed || !enforced;
  }

  public Reason reason() {
    return reason;
  }

  /** The deciding rule, or {@code null} (no match, private destination, invalid host). */
  public Rule rule() {
    return rule;
  }

  /** The deciding rule's catalog, or {@code null}. */
  public String catalog() {
    return rule == null ? null : rule.catalog();
  }

  public boolean enforced() {
    return enforced;
  }

  /** The policy generation that made this decision. */
  public long generation() {
    return generation;
  }

  @Override
  public String toString() {
    return (allowed ? "allow" : "deny") + " reason=" + reason.id()
        + (rule == null ? "" : " rule=" + rule.pattern() + " catalog=" + rule.catalog())
        + (enforced ? "" : " enforced=false");
  }
}
