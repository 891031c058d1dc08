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
        new Expected(f, 16, "timeouts.requestHead must be a positive duration"),
        new Expected(f, 18, "tunnel.requireSniMatch must be true or false"),
        new Expected(f, 19, "tunnel.refuseEch must be true or false, not '1'"),
        new Expected(f, 21, "shutdown.drain must be a positive duration such as 500ms, 10s"),
        new Expected(f, 23, "resolver.servers: 'dns.example' must be an IP address")));
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
  void aCharacterYamlDoesNotAllowHasItsLineAndEveryProblemIsOneLine() {
    Problems problems = new Problems();
    ConfigLoader.read("ctl.yaml", new java.io.StringReader(
        "policy:\n  rules:\n    - allow: a\u0001.test\n"), problems);
    assertThat(problems.errors()).singleElement().satisfies(p -> {
      assertThat(p.where().line()).isEqualTo(3);
      assertThat(p.message()).contains("U+0001");
    });
    Problems multi = new Problems();
    ConfigLoader.read("multi.yaml", new java.io.StringReader(
        "listeners:\n  - name: x\n    mode: \"a\\nb\"\n    bind: 127.0.0.1:1\n"), multi);
    assertThat(multi.errors()).singleElement().satisfies(p ->
        assertThat(p.toString()).startsWith("multi.yaml:3: ").doesNotContain("\n")
            .contains("'a\\nb'"));
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

  @Test
  void sourceMistakesAreReportedWithTheirLines() {
    String f = "sources.yaml";
    List<Problems.Problem> errors = errorsOf(f);
    assertExactly(errors, List.of(
        new Expected(f, 5, "source name 'Bad Name' must be lower-case letters"),
        new Expected(f, 6, "prefix"),
        new Expected(f, 9, "unsupported password hash: use bcrypt ($2y$...) or Argon2"),
        new Expected(f, 10, "user name 'a:b' must not contain ':'"),
        new Expected(f, 11, "Argon2 parameters out of range"),
        new Expected(f, 13, "sha256 must be the token's SHA-256 in 64 lower-case hex digits"),
        new Expected(f, 14, "unknown catalog 'aks-nope'"),
        new Expected(f, 15, "source 'ci' is defined twice (also at line 7)"),
        new Expected(f, 16, "unknown key 'colour' in a source"),
        new Expected(f, 23, "user 'same' has another password hash at line 20")));
  }

  @Test
  void aSourceAfterACatchAllIsAWarning() {
    Problems problems = new Problems();
    ConfigLoader.read("t.yaml", new java.io.StringReader("""
        policy:
          sources:
            - name: everyone
            - name: never
              clients: [10.0.0.0/8]
        """), problems);
    assertThat(problems.errors()).isEmpty();
    assertThat(problems.warnings()).singleElement().satisfies(w -> assertThat(w.toString())
        .isEqualTo("t.yaml:4: warning: source 'never' is never used: source 'everyone'"
            + " (line 3) has neither clients nor credentials and takes every client first"));
  }
}
