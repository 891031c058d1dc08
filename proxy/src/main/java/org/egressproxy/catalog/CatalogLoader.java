package org.egressproxy.catalog;

import java.io.Reader;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.egressproxy.config.Problems;
import org.egressproxy.config.YamlReader;
import org.egressproxy.config.YamlReader.MapView;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.NamePattern;
import org.egressproxy.match.PatternException;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;
import org.yaml.snakeyaml.nodes.Node;

/**
 * Reads one catalog file. Structure is checked here (keys, types, ports, protocols, CIDRs, that
 * every {@code {variable}} a pattern uses is declared); host patterns are compiled, with the
 * variables' values, when the policy is built.
 */
public final class CatalogLoader {
  private static final Pattern VARIABLE = Pattern.compile("\\{([^{}]*)}");
  private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9-]*");

  private CatalogLoader() {}

  /**
   * Reads a catalog from {@code reader}; {@code file} names it in problems, {@code origin} is
   * recorded in the catalog. Returns {@code null} when the file cannot be used at all.
   */
  public static Catalog read(String file, String origin, Reader reader, Problems problems) {
    YamlReader y = new YamlReader(file, problems);
    Node root = y.compose(reader);
    if (root == null) {
      if (!problems.hasErrors()) {
        problems.error(y.at(null), "the catalog file is empty");
      }
      return null;
    }
    MapView m = y.map(root, "a catalog");
    if (m == null) {
      return null;
    }
    Node nameNode = m.require("name");
    String name = nameNode == null ? null : y.string(nameNode, "name");
    if (name != null && !NAME.matcher(name).matches()) {
      y.error(nameNode, "catalog name '" + name + "' must be lower-case letters, digits and '-'");
    }
    String description = text(y, m.require("description"), "description");
    String source = text(y, m.require("source"), "source");
    List<String> sections = new ArrayList<>();
    Node sectionsNode = m.get("sections");
    if (sectionsNode != null) {
      sections.addAll(y.strings(sectionsNode, "sections", s -> s));
    }
    Set<String> declared = new LinkedHashSet<>();
    Node varsNode = m.get("variables");
    if (varsNode != null) {
      declared.addAll(y.strings(varsNode, "variables", s -> s));
    }
    List<Catalog.Rule> rules = new ArrayList<>();
    Set<String> used = new LinkedHashSet<>();
    Node rulesNode = m.require("rules");
    if (rulesNode != null) {
      for (Node item : y.list(rulesNode, "rules")) {
        Catalog.Rule r = rule(y, item, declared, used);
        if (r != null) {
          rules.add(r);
        }
      }
    }
    List<Catalog.Info> info = new ArrayList<>();
    Node infoNode = m.get("informational");
    if (infoNode != null) {
      for (Node item : y.list(infoNode, "informational")) {
        Catalog.Info i = info(y, item);
        if (i != null) {
          info.add(i);
        }
      }
    }
    m.finish();
    for (String v : declared) {
      if (!used.contains(v)) {
        y.warning(varsNode, "variable '" + v + "' is declared but no rule uses it");
      }
    }
    if (name == null) {
      return null;
    }
    return new Catalog(name, description, source, List.copyOf(sections), List.copyOf(declared),
        List.copyOf(rules), List.copyOf(info), origin, y.at(nameNode));
  }

  private static Catalog.Rule rule(YamlReader y, Node item, Set<String> declared,
      Set<String> used) {
    MapView r = y.map(item, "a catalog rule");
    if (r == null) {
      return null;
    }
    Node hostNode = r.get("host");
    Node cidrNode = r.get("cidr");
    List<Integer> ports = y.ports(r, "ports");
    Node protoNode = r.require("protocol");
    String purpose = text(y, r.require("purpose"), "purpose");
    r.finish();
    if (ports == null) {
      y.error(item, "a catalog rule needs 'ports:' (the seed tables always give them)");
    }
    int protocols = 0;
    String proto = protoNode == null ? null : y.string(protoNode, "protocol");
    if (proto != null) {
      Protocol p = Protocol.fromId(proto);
      if (p == null) {
        y.error(protoNode, "protocol must be tls or http, not '" + proto + "'");
      } else {
        protocols = p.bit();
      }
    }
    if ((hostNode == null) == (cidrNode == null)) {
      y.error(item, "a catalog rule needs exactly one of 'host:' or 'cidr:'");
      return null;
    }
    String host = null;
    String cidr = null;
    if (hostNode != null) {
      host = y.string(hostNode, "host");
      if (host != null) {
        Map<String, String> placeholders = new HashMap<>();
        Matcher vm = VARIABLE.matcher(host);
        while (vm.find()) {
          used.add(vm.group(1));
          if (!declared.contains(vm.group(1))) {
            y.error(hostNode, "'" + host + "' uses {" + vm.group(1) + "}, which the catalog"
                + " does not declare under variables:");
            host = null;
            break;
          }
          placeholders.put(vm.group(1), "placeholder");
        }
        if (host != null) {
          // The syntax is checked now, whether or not a configuration uses the catalog; the
          // values are filled in when a policy is compiled.
          try {
            NamePattern.parse(host, placeholders);
          } catch (PatternException e) {
            y.error(hostNode, e.getMessage());
            host = null;
          }
        }
      }
    } else {
      cidr = y.string(cidrNode, "cidr");
      if (cidr != null) {
        try {
          Cidr.parse(cidr);
        } catch (PatternException e) {
          y.error(cidrNode, e.getMessage());
          cidr = null;
        }
      }
    }
    if ((host == null && cidr == null) || ports == null || ports.isEmpty() || protocols == 0) {
      return null;
    }
    return new Catalog.Rule(host, cidr, portSet(ports), protocols, purpose, y.at(hostNode != null
        ? hostNode : cidrNode));
  }

  private static Catalog.Info info(YamlReader y, Node item) {
    MapView r = y.map(item, "an informational entry");
    if (r == null) {
      return null;
    }
    String destination = text(y, r.require("destination"), "destination");
    Node protoNode = r.require("protocol");
    String proto = protoNode == null ? null : y.string(protoNode, "protocol");
    if (proto != null && !proto.equals("tcp") && !proto.equals("udp")) {
      y.error(protoNode, "an informational entry's protocol is tcp or udp, not '" + proto + "'");
    }
    List<Integer> ports = y.ports(r, "ports");
    String purpose = text(y, r.require("purpose"), "purpose");
    r.finish();
    if (destination == null || ports == null || ports.isEmpty()) {
      return null;
    }
    return new Catalog.Info(destination, proto, portSet(ports), purpose, y.at(item));
  }

  private static PortSet portSet(List<Integer> ports) {
    return PortSet.of(ports.stream().mapToInt(Integer::intValue).toArray());
  }

  private static String text(YamlReader y, Node node, String what) {
    return node == null ? null : y.string(node, what);
  }
}
