package org.egressproxy.catalog;

import java.util.List;
import org.egressproxy.config.SourceRef;
import org.egressproxy.match.PortSet;

/**
 * A rule catalog: the destinations one vendor table says a cluster needs, transcribed row by row.
 * Its rules are allow rules; its informational entries are network rules (UDP, SSH, service
 * tags) that a proxy cannot carry: shown to operators, never enforced.
 *
 * @param origin where it was read from: {@code builtin} or a file path
 * @param at where its {@code name:} is written
 */
public record Catalog(
    String name,
    String description,
    String source,
    List<String> sections,
    List<String> variables,
    List<Rule> rules,
    List<Info> informational,
    String origin,
    SourceRef at) {

  /** A rule: a host pattern (with {@code {variables}}) or a CIDR, its ports and protocols. */
  public record Rule(String host, String cidr, PortSet ports, int protocols, String purpose,
      SourceRef at) {
    /** The pattern as written: host or CIDR. */
    public String pattern() {
      return host != null ? host : cidr;
    }
  }

  /** A network rule recorded for operators; the proxy does not use it. */
  public record Info(String destination, String protocol, PortSet ports, String purpose,
      SourceRef at) {}

  public boolean builtin() {
    return BUILTIN.equals(origin);
  }

  public static final String BUILTIN = "builtin";
}
