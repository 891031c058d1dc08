package org.egressproxy.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import org.egressproxy.auth.PasswordHash;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Makes what {@code policy.sources} stores instead of a secret: a password's bcrypt or Argon2id
 * hash for {@code users[].passwordHash}, or a Bearer token's SHA-256 for {@code tokens[].sha256}.
 * The secret is read from standard input (one line), never from the command line, where other
 * users of the machine could see it.
 */
@Command(name = "hash", mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class, description = {
    "Hash a password (users[].passwordHash) or a token (tokens[].sha256) read from stdin.",
    "Example: printf '%%s' \"$PASSWORD\" | egress-proxy hash"})
final class HashCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(names = "--token", description = "Print the SHA-256 of a Bearer token instead.")
  boolean token;

  @Option(names = "--argon2", description = "Argon2id (19 MiB, t=2) instead of bcrypt.")
  boolean argon2;

  @Option(names = "--cost", paramLabel = "N", description = "bcrypt cost, 4-16. Default: 10.")
  int cost = 10;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    String secret = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
        .readLine();
    if (secret == null || secret.isEmpty()) {
      err.println("hash: give the " + (token ? "token" : "password")
          + " on standard input, e.g. printf '%s' \"$SECRET\" | egress-proxy hash");
      err.flush();
      return Main.CONFIG_ERROR;
    }
    if (cost < 4 || cost > 16) {
      err.println("hash: --cost must be 4-16");
      err.flush();
      return Main.CONFIG_ERROR;
    }
    try {
      out.println(token ? PasswordHash.sha256Hex(secret)
          : argon2 ? PasswordHash.argon2id(secret) : PasswordHash.bcrypt(secret, cost));
    } catch (IllegalArgumentException e) {
      err.println("hash: " + e.getMessage());
      err.flush();
      return Main.CONFIG_ERROR;
    }
    out.flush();
    return Main.OK;
  }
}
