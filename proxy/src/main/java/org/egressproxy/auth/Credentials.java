package org.egressproxy.auth;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Expiry;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.egressproxy.config.Config;

/**
 * The users and tokens of {@code policy.sources}, and what each {@code Proxy-Authorization} value
 * proves. A Bearer token is checked at once (a SHA-256 and a map lookup). A Basic password is
 * verified against its bcrypt or Argon2 hash, which takes tens of milliseconds, so {@link
 * #lookup} answers only from a cache and {@link #verify} — run off the event loop — fills it.
 * The cache is keyed by the SHA-256 of the header, never the header itself, keeps a success for
 * {@value #SUCCESS_MINUTES} minutes and a failure for {@value #FAILURE_SECONDS} seconds, and is
 * bounded. A reload builds new credentials and so a cold cache: a changed password applies at once.
 */
public final class Credentials {
  static final int SUCCESS_MINUTES = 5;
  static final int FAILURE_SECONDS = 30;
  static final int MAX_CACHED = 10_000;
  /** Longer headers are refused unread: no credential needs this much. */
  static final int MAX_HEADER = 4096;

  /** No users and no tokens: every header proves nothing. */
  public static final Credentials NONE = new Credentials(Map.of(), Map.of(), false, false);

  private final Map<String, PasswordHash> users;
  private final Map<String, String> tokensBySha256;
  private final boolean basic;
  private final boolean bearer;
  private final Cache<String, Credential> verified;

  private Credentials(Map<String, PasswordHash> users, Map<String, String> tokensBySha256,
      boolean basic, boolean bearer) {
    this.users = users;
    this.tokensBySha256 = tokensBySha256;
    this.basic = basic;
    this.bearer = bearer;
    this.verified = Caffeine.newBuilder().maximumSize(MAX_CACHED)
        .expireAfter(Expiry.<String, Credential>writing((k, v) -> v.proven()
            ? java.time.Duration.ofMinutes(SUCCESS_MINUTES)
            : java.time.Duration.ofSeconds(FAILURE_SECONDS)))
        .build();
  }

  /** The credentials of every source in {@code config} (already validated by the loader). */
  public static Credentials of(Config config) {
    Map<String, PasswordHash> users = new HashMap<>();
    Map<String, String> tokens = new HashMap<>();
    for (Config.Source s : config.policy().sources()) {
      s.users().forEach(u -> users.putIfAbsent(u.name(), PasswordHash.parse(u.passwordHash())));
      s.tokens().forEach(t -> tokens.putIfAbsent(t.sha256(), t.name()));
    }
    if (users.isEmpty() && tokens.isEmpty()) {
      return NONE;
    }
    return new Credentials(Map.copyOf(users), Map.copyOf(tokens), !users.isEmpty(),
        !tokens.isEmpty());
  }

  /** True when some source asks for credentials. */
  public boolean any() {
    return basic || bearer;
  }

  /** The {@code Proxy-Authenticate} challenges a 407 carries. */
  public String[] challenges() {
    if (basic && bearer) {
      return new String[] {"Proxy-Authenticate: Basic realm=\"egress-proxy\", charset=\"UTF-8\"",
          "Proxy-Authenticate: Bearer realm=\"egress-proxy\""};
    }
    return bearer ? new String[] {"Proxy-Authenticate: Bearer realm=\"egress-proxy\""}
        : new String[] {"Proxy-Authenticate: Basic realm=\"egress-proxy\", charset=\"UTF-8\""};
  }

  /**
   * What {@code header} proves, when that is known without verifying a password: {@code null}
   * means {@link #verify} must run first (off the event loop).
   */
  public Credential lookup(String header) {
    if (header == null || !any()) {
      return Credential.NONE;
    }
    if (header.length() > MAX_HEADER) {
      return Credential.INVALID;
    }
    String key = PasswordHash.sha256Hex(header);
    Credential c = verified.getIfPresent(key);
    if (c != null) {
      return c;
    }
    Parsed p = parse(header);
    if (p.password == null) {
      verified.put(key, p.result); // a token, or malformed: known without a slow step
      return p.result;
    }
    return null;
  }

  /** What {@code header} proves, verifying a password if need be. Slow: not on an event loop. */
  public Credential verify(String header) {
    Credential quick = lookup(header);
    if (quick != null) {
      return quick;
    }
    Parsed p = parse(header);
    Credential result = p.hash.verify(p.password)
        ? new Credential(Credential.Kind.USER, p.user)
        : new Credential(Credential.Kind.INVALID, p.user);
    verified.put(PasswordHash.sha256Hex(header), result);
    return result;
  }

  /** A header taken apart: a result known already, or a user, password and hash to verify. */
  private record Parsed(Credential result, String user, String password, PasswordHash hash) {}

  private Parsed parse(String header) {
    String h = header.strip();
    int space = h.indexOf(' ');
    String scheme = space < 0 ? h : h.substring(0, space).toLowerCase(Locale.ROOT);
    String value = space < 0 ? "" : h.substring(space + 1).strip();
    if (scheme.equals("bearer") && bearer) {
      String name = tokensBySha256.get(PasswordHash.sha256Hex(value));
      return new Parsed(name == null ? Credential.INVALID
          : new Credential(Credential.Kind.TOKEN, name), null, null, null);
    }
    if (scheme.equals("basic") && basic) {
      String decoded;
      try {
        decoded = new String(Base64.getDecoder().decode(value), StandardCharsets.UTF_8);
      } catch (IllegalArgumentException e) {
        return new Parsed(Credential.INVALID, null, null, null);
      }
      int colon = decoded.indexOf(':');
      if (colon < 0) {
        return new Parsed(Credential.INVALID, null, null, null);
      }
      String user = decoded.substring(0, colon);
      PasswordHash hash = users.get(user);
      if (hash == null) {
        return new Parsed(new Credential(Credential.Kind.INVALID, printable(user)), null, null,
            null);
      }
      return new Parsed(null, user, decoded.substring(colon + 1), hash);
    }
    return new Parsed(Credential.INVALID, null, null, null);
  }

  /** A claimed user name as it may appear in the log: bounded, without control characters. */
  private static String printable(String user) {
    StringBuilder sb = new StringBuilder(Math.min(user.length(), 64));
    for (int i = 0; i < user.length() && sb.length() < 64; i++) {
      char ch = user.charAt(i);
      sb.append(ch < 0x20 || ch == 0x7f ? '?' : ch);
    }
    return sb.toString();
  }
}
