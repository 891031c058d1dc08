package org.egressproxy.policy;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.egressproxy.catalog.Catalog;
import org.egressproxy.config.Config.EnforcementMode;
import org.egressproxy.match.CidrTrie;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.NameTrie;

/**
 * Catalogs, local rules and variables compiled into one immutable policy: a name trie, a CIDR trie
 * and the destination exceptions. Deciding walks the trie for the destination's labels and never
 * allocates. Safe to share between threads; a reload builds a new one.
 */
public final class CompiledPolicy {
  /** A catalog in use and how many of its rules are active. */
  public record CatalogUse(Catalog catalog, int activeRules, List<String> disabledRules) {}

  private final long generation;
  private final EnforcementMode mode;
  private final NameTrie<Rule> names;
  private final CidrTrie<Rule> cidrs;
  private final CidrTrie<Rule> allowedDestinations;
  private final List<CatalogUse> catalogs;
  private final List<Rule> localRules;
  private final Map<String, String> variables;
  private final Instant loadedAt;
  private final Decision noMatch;
  private final Decision privateDestination;
  private final Decision invalidHost;

  CompiledPolicy(long generation, EnforcementMode mode, NameTrie<Rule> names, CidrTrie<Rule> cidrs,
      CidrTrie<Rule> allowedDestinations, List<CatalogUse> catalogs, List<Rule> localRules,
      Map<String, String> variables, Instant loadedAt) {
    this.generation = generation;
    this.mode = mode;
    this.names = names;
    this.cidrs = cidrs;
    this.allowedDestinations = allowedDestinations;
    this.catalogs = List.copyOf(catalogs);
    this.localRules = List.copyOf(localRules);
    this.variables = Map.copyOf(variables);
    this.loadedAt = loadedAt;
    boolean enforce = mode == EnforcementMode.ENFORCE;
    this.noMatch = new Decision(false, Reason.NO_MATCH, null, enforce, generation);
    // Refusing private destinations and invalid names is enforced in report mode too.
    this.privateDestination =
        new Decision(false, Reason.PRIVATE_DESTINATION, null, true, generation);
    this.invalidHost = new Decision(false, Reason.INVALID_HOST, null, true, generation);
  }

  /**
   * Decides {@code d} offline: an invalid host is denied; an IP literal is refused when private
   * (unless an exception covers it), then matched against CIDR rules only; a name is matched
   * against name rules only. A deny rule beats any allow; no match is a deny.
   */
  public Decision decide(Destination d) {
    if (!d.valid()) {
      return invalidHost;
    }
    Rule rule;
    if (d.isIp()) {
      if (refuses(d.ip())) {
        return privateDestination;
      }
      rule = cidrs.find(d.ip(), d.port(), d.protocol().bit());
    } else {
      rule = names.find(d.host(), d.port(), d.protocol().bit());
    }
    return rule == null ? noMatch : rule.decision();
  }

  /**
   * True when the proxy must not connect to {@code address}: it is in a {@link PrivateRanges}
   * range and no {@code allowDestinationCidrs} entry covers it.
   */
  public boolean refuses(IpLiteral address) {
    return PrivateRanges.contains(address) && !allowedDestinations.covers(address);
  }

  /** The decision for a name whose resolved address {@link #refuses} refuses. */
  public Decision privateDestination() {
    return privateDestination;
  }

  public long generation() {
    return generation;
  }

  public EnforcementMode mode() {
    return mode;
  }

  public List<CatalogUse> catalogs() {
    return catalogs;
  }

  public List<Rule> localRules() {
    return localRules;
  }

  public Map<String, String> variables() {
    return variables;
  }

  public Instant loadedAt() {
    return loadedAt;
  }

  /** Active name and CIDR rules, local ones included. */
  public int ruleCount() {
    return names.size() + cidrs.size();
  }
}
