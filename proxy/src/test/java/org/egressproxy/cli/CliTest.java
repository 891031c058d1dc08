package org.egressproxy.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

/** The commands in-process, with the embedded default or test fixtures. */
class CliTest {
  record Result(int status, String out, String err) {}

  static Result run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int status = Main.execute(new PrintWriter(out), new PrintWriter(err), args);
    return new Result(status, out.toString(), err.toString());
  }

  @Test
  void checkAllowsWithRuleAndCatalog() {
    Result r = run("check", "mcr.microsoft.com", "sun.nova-platform.io:8140",
        "abc.hcp.westeurope.azmk8s.io:443", "217.73.63.211:8140");
    assertThat(r.status()).isZero();
    assertThat(r.out().lines()).containsExactly(
        "ALLOW mcr.microsoft.com:443 tls reason=rule rule=mcr.microsoft.com catalog=aks-global",
        "ALLOW sun.nova-platform.io:8140 tls reason=rule rule=sun.nova-platform.io"
            + " catalog=nova-platform",
        "ALLOW abc.hcp.westeurope.azmk8s.io:443 tls reason=rule"
            + " rule=*.hcp.{location}.azmk8s.io catalog=aks-global",
        "ALLOW 217.73.63.211:8140 tls reason=rule rule=217.73.63.211/32 catalog=nova-platform");
  }

  @Test
  void checkDeniesWithReasonAndExitsOne() {
    Result r = run("check", "mcr.microsoft.com", "mcr.microsoft.com.evil.com", "10.0.0.1",
        "[2001:db8::1]:8443", "127.1", "mcr.microsoft.com:80");
    assertThat(r.status()).isEqualTo(1);
    assertThat(r.out().lines()).containsExactly(
        "ALLOW mcr.microsoft.com:443 tls reason=rule rule=mcr.microsoft.com catalog=aks-global",
        "DENY mcr.microsoft.com.evil.com:443 tls reason=no-match",
        "DENY 10.0.0.1:443 tls reason=private-destination",
        "DENY [2001:db8::1]:8443 tls reason=private-destination",
        "DENY 127.1:443 tls reason=invalid-host",
        "DENY mcr.microsoft.com:80 http reason=no-match");
  }

  @Test
  void checkProtocolOptionAndBadArguments() {
    assertThat(run("check", "--protocol", "http", "mcr.microsoft.com").out())
        .startsWith("DENY mcr.microsoft.com:443 http reason=no-match");
    Result bad = run("check", "mcr.microsoft.com:99999");
    assertThat(bad.status()).isEqualTo(2);
    assertThat(bad.err()).contains("is not HOST[:PORT]");
    assertThat(run("check", "--protocol", "udp", "x.com").status()).isEqualTo(2);
    assertThat(run("check").status()).isEqualTo(2);
  }

  @Test
  void checkWithABrokenConfigExitsTwoWithFileAndLine() {
    Result r = run("check", "--config", "src/test/resources/config-errors/many-errors.yaml",
        "mcr.microsoft.com");
    assertThat(r.status()).isEqualTo(2);
    assertThat(r.out()).isEmpty();
    assertThat(r.err()).contains("many-errors.yaml:13: unknown variable 'locaton'");
    // --config is accepted before the command too
    Result before = run("--config", "src/test/resources/config-errors/many-errors.yaml", "check",
        "x.com");
    assertThat(before.status()).isEqualTo(2);
  }

  @Test
  void validate() {
    Result ok = run("validate");
    assertThat(ok.status()).isZero();
    assertThat(ok.out()).startsWith("OK embedded:default-config.yaml: 1 listeners, policy");
    Result bad = run("validate", "--config", "src/test/resources/config-errors/many-errors.yaml");
    assertThat(bad.status()).isEqualTo(2);
    assertThat(bad.err().lines().filter(l -> l.matches("^[^ ]+\\.yaml:\\d+: .*"))).hasSize(26);
    assertThat(bad.err()).contains("configuration error: 26 problems");
    Result warn = run("validate", "--config", "src/test/resources/golden/unset.yaml");
    assertThat(warn.status()).isZero();
    assertThat(warn.err()).contains("unset.yaml:3: warning: catalog 'aks-global' uses {location}");
  }

  @Test
  void catalogsListsEveryCatalogAndTheInformationalRules() {
    Result r = run("catalogs");
    assertThat(r.status()).isZero();
    for (String name : org.egressproxy.catalog.CatalogContentTest.EXPECTED.keySet()) {
      assertThat(r.out()).containsPattern("(?m)^" + name + " +\\d+ ");
    }
    assertThat(r.out()).containsPattern("(?m)^aks-global +9 +\\d+ +location +yes +builtin");
    assertThat(r.out()).contains("Informational network rules");
    assertThat(r.out()).containsPattern("aks-global +udp/1194");
    assertThat(r.out()).containsPattern("aks-china +tcp/22");

    Result detail = run("catalogs", "nova-platform");
    assertThat(detail.status()).isZero();
    assertThat(detail.out()).contains("nova-platform (in use)").contains("sun.nova-platform.io")
        .contains("217.73.63.221/32");
    assertThat(run("catalogs", "nope").status()).isEqualTo(2);
  }

  @Test
  void usage() {
    assertThat(run("--help").status()).isZero();
    assertThat(run("--help").out().replaceAll("\\s+", " ")).as("the command list")
        .contains("With names: each catalog's rules.");
    assertThat(run("frobnicate").status()).isEqualTo(2);
    assertThat(run("--version").out()).startsWith("egress-proxy");
  }

  /**
   * Every command answers --help with its usage (and does nothing else: run does not serve).
   */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(strings = {"run", "check", "validate",
      "catalogs", "export", "hash"})
  void everyCommandAnswersHelp(String command) {
    Result r = run(command, "--help");
    assertThat(r.status()).as(r.err()).isZero();
    assertThat(r.out()).startsWith("Usage: egress-proxy " + command).contains("--help");
    assertThat(r.err()).doesNotContain("WARN").doesNotContain("Unknown option");
    assertThat(run(command, "-V").out()).startsWith("egress-proxy");
  }
}
