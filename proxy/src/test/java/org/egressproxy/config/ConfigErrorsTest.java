package org.egressproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;
import org.egressproxy.policy.PolicyLoader;
import org.junit.jupiter.api.Test;

/**
 * Bad configurations: every problem is reported, each with the file and line it is on, all in
 * one run. Fixtures in src/test/resources/config-errors; paths are relative to the module
 * directory, where Surefire runs.
 */
class ConfigErrorsTest {
  private static final String DIR = "src/test/resources/config-errors/";

  record Expected(String file, int line, String fragment) {}

  private static List<Problems.Problem> errorsOf(String file) {
    Throwable t = org.assertj.core.api.Assertions.catchThrowable(
        () -> PolicyLoader.load(Path.of(DIR + file)));
    assertThat(t).as(file + " is invalid").isInstanceOf(ConfigException.class);
    return ((ConfigException) t).errors();
  }

  private static void assertExactly(List<Problems.Problem> errors, List<Expected> expected) {
    for (Expected e : expected) {
      assertThat(errors)
          .as("an error at %s:%d containing \"%s\"; got:%n%s", e.file(), e.line(), e.fragment(),
              String.join("\n", errors.stream().map(Problems.Problem::toString).toList()))
          .anySatisfy(p -> {
            assertThat(p.where().file()).endsWith(e.file());
            assertThat(p.where().line()).isEqualTo(e.line());
            assertThat(p.message()).contains(e.fragment());
          });
    }
    assertThat(errors).as("no other errors than expected: %s", errors).hasSize(expected.size());
  }

  @Test
  void everyClassOfMistakeIsReportedWithItsLine() {
    String f = "many-errors.yaml";
    String c = "catalogs/broken.yaml";
    assertExactly(errorsOf(f), List.of(
        new Expected(f, 5, "unknown key 'colour' in listeners[0]; known keys: name, mode, bind"),
        new Expected(f, 7, "listeners[1].mode must be http-proxy, tls-sni or http-host, not 'tls-snI'"),
        new Expected(f, 8, "must be an IP address and a port, e.g. 0.0.0.0:3128"),
        new Expected(f, 10, "admin.bind must be an IP address and a port"),
        new Expected(f, 13, "unknown variable 'locaton'"),
        new Expected(f, 15, "unknown catalog 'aks-nope'; known catalogs: aks-china,"),
        new Expected(f, 18, "for every subdomain write '*.foo.com'"),
        new Expected(f, 19, "'a..b' has an empty label"),
        new Expected(f, 20, "longer than 63 characters"),
        new Expected(f, 21, "uses variable {nowhere}, which is not set"),
        new Expected(f, 23, "must be between 1 and 65535, not 0"),
        new Expected(f, 23, "must be between 1 and 65535, not 70000"),
        new Expected(f, 25, "ports must be a list"),
        new Expected(f, 26, "did you mean '10.0.0.0/8'"),
        new Expected(f, 27, "needs exactly one of 'allow:' or 'deny:'"),
        new Expected(f, 29, "prefix length must be 0-32"),
        new Expected(f, 32, "must be an IP address, not 'not-an-ip'"),
        new Expected(f, 34, "cache.maxEntries must be a whole number"),
        new Expected(f, 36, "decisionLog.path must be a string, not a list"),
        new Expected(f, 37, "unknown key 'unknownTop' in the configuration"),
        new Expected(c, 10, "'*' must be a whole label"),
        new Expected(c, 14, "uses {region}, which the catalog does not declare"),
        new Expected(c, 19, "must be between 1 and 65535, not 65536"),
        new Expected(c, 20, "protocol must be tls or http, not 'https'"),
        new Expected(c, 22, "prefix length must be 0-32"),
        new Expected("catalogs/misnamed.yaml", 1, "must be in a file named other-name.yaml")));
  }

  @Test
  void nameOver253CharactersAndUnknownSectionKey() {
    String f = "long-name.yaml";
    assertExactly(errorsOf(f), List.of(
        new Expected(f, 3, "longer than 253 characters"),
        new Expected(f, 6, "unknown key 'rules2' in policy")));
  }

  @Test
  void dataPlaneKeysAreCheckedToo() {
    String f = "data-plane-keys.yaml";
    assertExactly(errorsOf(f), List.of(
        new Expected(f, 5, "tls applies to http-proxy listeners"),
        new Expected(f, 9, "needs both certFile and keyFile"),
        new Expected(f, 11, "upstream.proxy must be http://HOST:PORT or socks5://HOST:PORT"),
        new Expected(f, 12, "for every subdomain write '*.bad.example'"),
        new Expected(f, 14, "timeouts.idle must be a positive duration"),
        new Expected(f, 15, "timeouts.connect must be a positive duration"),
        new Expected(f, 17, "tunnel.requireSniMatch must be true or false"),
        new Expected(f, 19, "shutdown.drain must be a positive duration such as 500ms, 10s"),
        new Expected(f, 21, "resolver.servers: 'dns.example' must be an IP address")));
  }

  @Test
  void transparentOnlyOnTransparentModes() {
    String f = "transparent.yaml";
    assertExactly(errorsOf(f), List.of(
        new Expected(f, 5, "transparent applies to tls-sni and http-host listeners"),
        new Expected(f, 9, "listeners[1].transparent must be true or false")));
  }

  @Test
  void yamlSyntaxErrorHasALine() {
    List<Problems.Problem> errors = errorsOf("not-yaml.yaml");
    assertThat(errors).hasSize(1);
    assertThat(errors.get(0).message()).startsWith("not valid YAML");
    assertThat(errors.get(0).where().line()).isBetween(3, 5);
  }

  @Test
  void duplicateKeysAreErrors() {
    String f = "duplicate-keys.yaml";
    assertExactly(errorsOf(f), List.of(
        new Expected(f, 3, "duplicate key 'policy' in the configuration (first at line 1)")));
  }

  @Test
  void missingFileIsAnError() {
    assertThat(errorsOf("does-not-exist.yaml")).singleElement()
        .satisfies(p -> assertThat(p.toString()).endsWith("does-not-exist.yaml: no such file"));
  }

  @Test
  void embeddedDefaultLoadsWithoutProblems() throws ConfigException {
    PolicyLoader.Loaded loaded = PolicyLoader.load(null);
    assertThat(loaded.problems().all()).isEmpty();
    assertThat(loaded.config().file()).isEqualTo(ConfigLoader.DEFAULT_NAME);
    assertThat(loaded.config().listeners()).singleElement().satisfies(l -> {
      assertThat(l.name()).isEqualTo("explicit");
      assertThat(l.bind().toString()).isEqualTo("127.0.0.1:3128");
    });
    assertThat(loaded.config().adminBind().toString()).isEqualTo("127.0.0.1:9090");
    assertThat(loaded.policy().catalogs()).extracting(u -> u.catalog().name())
        .containsExactly("aks-global", "nova-platform");
    assertThat(loaded.policy().variables()).containsEntry("location", "*");
  }

  @Test
  void unsetVariableDisablesRulesWithAWarningNotAnError() throws ConfigException {
    PolicyLoader.Loaded loaded = PolicyLoader.load(Path.of("src/test/resources/golden/unset.yaml"));
    assertThat(loaded.problems().errors()).isEmpty();
    assertThat(loaded.problems().warnings()).extracting(Problems.Problem::toString)
        .anySatisfy(w -> assertThat(w).contains("unset.yaml:3: warning: catalog 'aks-global' uses"
            + " {location}, which is not set"));
    assertThatThrownBy(() -> PolicyLoader.load(Path.of(DIR + "many-errors.yaml")))
        .isInstanceOf(ConfigException.class);
  }
}
