package org.egressproxy.auth;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import org.bouncycastle.crypto.generators.Argon2BytesGenerator;
import org.bouncycastle.crypto.generators.OpenBSDBCrypt;
import org.bouncycastle.crypto.params.Argon2Parameters;

/**
 * Password hashes as operators write them in {@code policy.sources[].users}: bcrypt ({@code
 * $2a$}, {@code $2b$}, {@code $2y$}, as {@code htpasswd -B} makes them) or Argon2 in the PHC
 * string format ({@code $argon2id$v=19$m=19456,t=2,p=1$salt$hash}, as the {@code argon2} tool
 * and {@code egress-proxy hash} make them). Verification costs tens of milliseconds on purpose:
 * never call {@link #verify} on an event loop.
 */
public final class PasswordHash {
  /** Argon2 costs beyond these are refused at load time: one verification must stay bounded. */
  static final int MAX_ARGON2_MEMORY_KIB = 256 * 1024;
  static final int MAX_ARGON2_ITERATIONS = 16;
  static final int MAX_ARGON2_PARALLELISM = 16;
  /** bcrypt reads at most 72 bytes of a password; longer ones would be silently truncated. */
  static final int MAX_BCRYPT_PASSWORD_BYTES = 72;

  private final String text;
  private final Argon2Parameters argon2; // null for bcrypt
  private final byte[] argon2Hash;

  private PasswordHash(String text, Argon2Parameters argon2, byte[] argon2Hash) {
    this.text = text;
    this.argon2 = argon2;
    this.argon2Hash = argon2Hash;
  }

  /**
   * Parses a hash.
   *
   * @throws IllegalArgumentException with a message that says what to write instead
   */
  public static PasswordHash parse(String text) {
    if (text.startsWith("$2a$") || text.startsWith("$2b$") || text.startsWith("$2y$")) {
      if (text.length() != 60 || !text.substring(4, 6).chars().allMatch(Character::isDigit)
          || text.charAt(6) != '$') {
        throw new IllegalArgumentException("not a bcrypt hash: expected $2y$NN$ followed by 53"
            + " characters (60 in all), e.g. from 'htpasswd -nbB user password' or"
            + " 'egress-proxy hash'");
      }
      int cost = Integer.parseInt(text.substring(4, 6));
      if (cost < 4 || cost > 16) {
        throw new IllegalArgumentException("bcrypt cost must be 4-16 (10-12 is usual), not "
            + cost);
      }
      return new PasswordHash(text, null, null);
    }
    if (text.startsWith("$argon2")) {
      return parseArgon2(text);
    }
    throw new IllegalArgumentException("unsupported password hash: use bcrypt ($2y$...) or"
        + " Argon2 ($argon2id$...); never a plain password. 'egress-proxy hash' makes one");
  }

  private static PasswordHash parseArgon2(String text) {
    String[] parts = text.split("\\$", -1);
    // "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
    if (parts.length != 6 || !parts[0].isEmpty()) {
      throw new IllegalArgumentException("not an Argon2 PHC string: expected"
          + " $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>");
    }
    int type = switch (parts[1]) {
      case "argon2id" -> Argon2Parameters.ARGON2_id;
      case "argon2i" -> Argon2Parameters.ARGON2_i;
      case "argon2d" -> Argon2Parameters.ARGON2_d;
      default -> throw new IllegalArgumentException("unknown Argon2 variant '" + parts[1]
          + "'; use argon2id");
    };
    if (!parts[2].equals("v=19") && !parts[2].equals("v=16")) {
      throw new IllegalArgumentException("Argon2 version must be v=19 (or v=16), not '"
          + parts[2] + "'");
    }
    int m = -1;
    int t = -1;
    int p = -1;
    for (String kv : parts[3].split(",")) {
      int eq = kv.indexOf('=');
      int value;
      try {
        value = eq < 0 ? -1 : Integer.parseInt(kv.substring(eq + 1));
      } catch (NumberFormatException e) {
        value = -1;
      }
      switch (eq < 0 ? kv : kv.substring(0, eq)) {
        case "m" -> m = value;
        case "t" -> t = value;
        case "p" -> p = value;
        default -> throw new IllegalArgumentException("unknown Argon2 parameter '" + kv + "'");
      }
    }
    if (m < 8 || m > MAX_ARGON2_MEMORY_KIB || t < 1 || t > MAX_ARGON2_ITERATIONS || p < 1
        || p > MAX_ARGON2_PARALLELISM) {
      throw new IllegalArgumentException("Argon2 parameters out of range: m (KiB) 8-"
          + MAX_ARGON2_MEMORY_KIB + ", t 1-" + MAX_ARGON2_ITERATIONS + ", p 1-"
          + MAX_ARGON2_PARALLELISM + "; got '" + parts[3] + "'");
    }
    byte[] salt;
    byte[] hash;
    try {
      salt = Base64.getDecoder().decode(parts[4]);
      hash = Base64.getDecoder().decode(parts[5]);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("Argon2 salt and hash must be base64: "
          + e.getMessage());
    }
    if (salt.length < 8 || hash.length < 16) {
      throw new IllegalArgumentException("Argon2 salt must be at least 8 bytes and the hash at"
          + " least 16");
    }
    Argon2Parameters params = new Argon2Parameters.Builder(type)
        .withVersion(parts[2].equals("v=19") ? Argon2Parameters.ARGON2_VERSION_13
            : Argon2Parameters.ARGON2_VERSION_10)
        .withMemoryAsKB(m).withIterations(t).withParallelism(p).withSalt(salt).build();
    return new PasswordHash(text, params, hash);
  }

  /** True when {@code password} is the one this hash was made from. Slow by design. */
  public boolean verify(String password) {
    if (argon2 == null) {
      if (password.getBytes(StandardCharsets.UTF_8).length > MAX_BCRYPT_PASSWORD_BYTES) {
        return false; // bcrypt would compare only a prefix
      }
      return OpenBSDBCrypt.checkPassword(text, password.toCharArray());
    }
    Argon2BytesGenerator g = new Argon2BytesGenerator();
    g.init(argon2);
    byte[] out = new byte[argon2Hash.length];
    g.generateBytes(password.getBytes(StandardCharsets.UTF_8), out);
    return MessageDigest.isEqual(out, argon2Hash);
  }

  /** A new bcrypt hash ({@code $2y$}) of {@code password} with a random salt. */
  public static String bcrypt(String password, int cost) {
    if (password.getBytes(StandardCharsets.UTF_8).length > MAX_BCRYPT_PASSWORD_BYTES) {
      throw new IllegalArgumentException("bcrypt takes passwords of at most 72 bytes; use"
          + " --argon2 for longer ones");
    }
    byte[] salt = new byte[16];
    new SecureRandom().nextBytes(salt);
    return OpenBSDBCrypt.generate("2y", password.toCharArray(), salt, cost);
  }

  /**
   * A new Argon2id hash of {@code password} with a random salt, with OWASP's recommended minimum
   * (19 MiB, 2 iterations, 1 lane).
   */
  public static String argon2id(String password) {
    byte[] salt = new byte[16];
    new SecureRandom().nextBytes(salt);
    int m = 19 * 1024;
    int t = 2;
    Argon2Parameters params = new Argon2Parameters.Builder(Argon2Parameters.ARGON2_id)
        .withVersion(Argon2Parameters.ARGON2_VERSION_13).withMemoryAsKB(m).withIterations(t)
        .withParallelism(1).withSalt(salt).build();
    Argon2BytesGenerator g = new Argon2BytesGenerator();
    g.init(params);
    byte[] out = new byte[32];
    g.generateBytes(password.getBytes(StandardCharsets.UTF_8), out);
    Base64.Encoder b64 = Base64.getEncoder().withoutPadding();
    return "$argon2id$v=19$m=" + m + ",t=" + t + ",p=1$" + b64.encodeToString(salt) + "$"
        + b64.encodeToString(out);
  }

  /** The hex SHA-256 of {@code token}: how {@code tokens[].sha256} stores a Bearer token. */
  public static String sha256Hex(String token) {
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8));
      return java.util.HexFormat.of().formatHex(d);
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public String toString() {
    return argon2 == null ? "bcrypt" : "argon2";
  }
}
