package org.egressproxy.policy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.egressproxy.config.ConfigException;
import org.egressproxy.match.Protocol;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The golden decision table in {@code golden/decisions.txt}: result, reason, rule and catalog. */
class GoldenDecisionTest {
  private static final Map<String, CompiledPolicy> POLICIES = new HashMap<>();

  record Case(int line, String config, String host, int port, Protocol protocol, String expect,
      String reason, String rule, String catalog) {
    @Override
    public String toString() {
      return "line " + line + ": " + config + " " + host + ":" + port + " " + protocol.id()
          + " -> " + expect + " " + reason;
    }
  }

  static List<Arguments> cases() throws IOException {
    List<String> lines = Files.readAllLines(TestPolicies.resource("golden/decisions.txt"),
        StandardCharsets.UTF_8);
    List<Arguments> out = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      String l = lines.get(i).strip();
      if (l.isEmpty() || l.startsWith("#")) {
        continue;
      }
      String[] f = l.split("\\s+");
      if (f.length != 7 && f.length != 9) {
        throw new IllegalArgumentException("decisions.txt:" + (i + 1) + ": 7 or 9 fields: " + l);
      }
      String dest = f[1];
      int colon = dest.lastIndexOf(':');
      Case c = new Case(i + 1, f[0], dest.substring(0, colon),
          Integer.parseInt(dest.substring(colon + 1)), Protocol.fromId(f[2]), f[3], f[4],
          f.length > 5 ? f[5] : "-", f.length > 6 ? f[6] : "-");
      out.add(Arguments.of(c));
    }
    return out;
  }

  private static synchronized CompiledPolicy policy(String config) throws ConfigException {
    CompiledPolicy p = POLICIES.get(config);
    if (p == null) {
      p = config.startsWith("catalog:")
          ? TestPolicies.onlyCatalog(config.substring("catalog:".length()))
          : TestPolicies.fromResource("golden/" + config + ".yaml");
      POLICIES.put(config, p);
    }
    return p;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void decides(Case c) throws ConfigException {
    Decision d = policy(c.config()).decide(Destination.of(c.host(), c.port(), c.protocol()));
    String verdict = d.allowed() ? "ALLOW" : d.enforced() ? "DENY" : "DENY*";
    assertThat(verdict + " " + d.reason().id() + " " + (d.rule() == null ? "-" : d.rule().pattern())
        + " " + (d.catalog() == null ? "-" : d.catalog()))
        .isEqualTo(c.expect() + " " + c.reason() + " " + c.rule() + " " + c.catalog());
  }

  @Test
  void tableIsLargeAndCoversEveryCatalog() throws IOException {
    List<Arguments> all = cases();
    assertThat(all).hasSizeGreaterThanOrEqualTo(200);
    for (String name : org.egressproxy.catalog.CatalogContentTest.EXPECTED.keySet()) {
      assertThat(all).as("a case for %s", name).anyMatch(a -> ((Case) a.get()[0]).config()
          .equals("catalog:" + name) && ((Case) a.get()[0]).expect().equals("ALLOW"));
    }
  }
}
