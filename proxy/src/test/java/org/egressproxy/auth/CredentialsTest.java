package org.egressproxy.auth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;
import org.junit.jupiter.api.Test;

/** Password hashes and what a Proxy-Authorization header proves. */
class CredentialsTest {
  /** Made with {@code htpasswd -nbB -C 5 alice wonderland} (Apache bcrypt, $2y$, cost 5). */
  static final String HTPASSWD_BCRYPT =
      "$2y$05$4ZhWI/S0bBjugliwTIyjRuBfTh0tWReBvwkVdDswo3HvqKlWNhVX2";
  /**
   * RFC 9106-style PHC string made by the reference {@code argon2} tool: {@code echo -n password |
   * argon2 somesalt -id -t 2 -m 8 -p 1 -e}.
   */
  static final String ARGON2_REFERENCE =
      "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";

  @Test
  void bcryptAndArgon2HashesVerifyTheirPasswordOnly() {
    String b = PasswordHash.bcrypt("pässword", 4);
    assertThat(b).startsWith("$2y$04$").hasSize(60);
    assertThat(PasswordHash.parse(b).verify("pässword")).isTrue();
    assertThat(PasswordHash.parse(b).verify("password")).isFalse();
    String a = PasswordHash.argon2id("pässword");
    assertThat(a).startsWith("$argon2id$v=19$m=19456,t=2,p=1$");
    assertThat(PasswordHash.parse(a).verify("pässword")).isTrue();
    assertThat(PasswordHash.parse(a).verify("pässwort")).isFalse();
  }

  @Test
  void hashesFromOtherToolsVerify() {
    assertThat(PasswordHash.parse(ARGON2_REFERENCE).verify("password")).isTrue();
    assertThat(PasswordHash.parse(ARGON2_REFERENCE).verify("passwore")).isFalse();
  }

  @Test
  void bcryptNeverComparesOnlyAPrefix() {
    String longPassword = "x".repeat(72);
    String b = PasswordHash.bcrypt(longPassword, 4);
    assertThat(PasswordHash.parse(b).verify(longPassword)).isTrue();
    assertThat(PasswordHash.parse(b).verify(longPassword + "y")).isFalse();
    assertThatThrownBy(() -> PasswordHash.bcrypt(longPassword + "y", 4))
        .hasMessageContaining("at most 72 bytes");
  }

  @Test
  void malformedHashesSayWhatToWrite() {
    assertThatThrownBy(() -> PasswordHash.parse("secret")).hasMessageContaining("never a plain");
    assertThatThrownBy(() -> PasswordHash.parse("$2y$10$short"))
        .hasMessageContaining("60 in all");
    assertThatThrownBy(() -> PasswordHash.parse("$2y$31$" + "a".repeat(53)))
        .hasMessageContaining("cost must be 4-16");
    assertThatThrownBy(() -> PasswordHash.parse("$argon2x$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aaaa"))
        .hasMessageContaining("unknown Argon2 variant");
    assertThatThrownBy(() -> PasswordHash.parse("$argon2id$v=19$m=8,t=1$c29tZXNhbHQ$"
        + "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4")).hasMessageContaining("out of range");
    assertThatThrownBy(() -> PasswordHash.parse("$argon2id$v=19$m=256,t=2,p=1$!!$aaaa"))
        .hasMessageContaining("base64");
  }

  static Credentials credentials(String sourcesYaml) {
    Problems problems = new Problems();
    Config c = ConfigLoader.read("t.yaml", new StringReader("policy:\n  sources:\n"
        + sourcesYaml), problems);
    assertThat(problems.errors()).isEmpty();
    return Credentials.of(c);
  }

  static String basic(String user, String password) {
    return "Basic " + Base64.getEncoder().encodeToString((user + ":" + password)
        .getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void headersProveUsersAndTokensAndNothingElse() {
    Credentials c = credentials("""
            - name: ci
              users:
                - {name: alice, passwordHash: "%s"}
              tokens:
                - {name: runner, sha256: "%s"}
        """.formatted(HTPASSWD_BCRYPT, PasswordHash.sha256Hex("tok")));
    assertThat(c.any()).isTrue();
    assertThat(c.challenges()).hasSize(2);
    assertThat(c.lookup(null)).isEqualTo(Credential.NONE);
    // A password needs the slow step first; then the cache answers.
    String good = basic("alice", "wonderland");
    assertThat(c.lookup(good)).isNull();
    assertThat(c.verify(good)).isEqualTo(new Credential(Credential.Kind.USER, "alice"));
    assertThat(c.lookup(good)).isEqualTo(new Credential(Credential.Kind.USER, "alice"));
    assertThat(c.verify(basic("alice", "wonderlanD")))
        .isEqualTo(new Credential(Credential.Kind.INVALID, "alice"));
    // Known at once: tokens, unknown users, malformed headers.
    assertThat(c.lookup("Bearer tok")).isEqualTo(new Credential(Credential.Kind.TOKEN,
        "runner"));
    assertThat(c.lookup("bearer  tok ")).isEqualTo(new Credential(Credential.Kind.TOKEN,
        "runner"));
    assertThat(c.lookup("Bearer tok2").kind()).isEqualTo(Credential.Kind.INVALID);
    assertThat(c.lookup(basic("bob\u0001", "x"))).isEqualTo(
        new Credential(Credential.Kind.INVALID, "bob?"));
    assertThat(c.lookup("Basic !!!").kind()).isEqualTo(Credential.Kind.INVALID);
    assertThat(c.lookup("Basic " + Base64.getEncoder().encodeToString("nocolon".getBytes())))
        .isEqualTo(Credential.INVALID);
    assertThat(c.lookup("Digest username=\"alice\"")).isEqualTo(Credential.INVALID);
    assertThat(c.lookup("Basic " + "A".repeat(5000))).isEqualTo(Credential.INVALID);
  }

  @Test
  void withoutCredentialsEveryHeaderProvesNothing() {
    Credentials c = credentials("    - name: nodes\n      clients: [10.0.0.0/8]\n");
    assertThat(c).isSameAs(Credentials.NONE);
    assertThat(c.any()).isFalse();
    assertThat(c.lookup("Bearer tok")).isEqualTo(Credential.NONE);
  }
}
