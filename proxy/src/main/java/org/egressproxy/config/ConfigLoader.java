package org.egressproxy.config;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.egressproxy.config.Config.CatalogDir;
import org.egressproxy.config.Config.CatalogRef;
import org.egressproxy.config.Config.EnforcementMode;
import org.egressproxy.config.Config.Listener;
import org.egressproxy.config.Config.LocalRule;
import org.egressproxy.config.Config.Variable;
import org.egressproxy.config.YamlReader.MapView;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.HostName;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.PatternException;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;

/**
 * Reads the YAML configuration into a {@link Config}. Every fixed key of the contract is read
 * here; anything else is an error. Reading goes on after a problem so that all of them are
 * reported in one run; the caller decides, from {@link Problems}, whether the result is usable.
 */
public final class ConfigLoader {
  /** The embedded default configuration, used when no file is given. */
  public static final String DEFAULT_RESOURCE = "default-config.yaml";

  public static final String DEFAULT_NAME = "embedded:" + DEFAULT_RESOURCE;

  private ConfigLoader() {}

  /** Loads {@code file}, or the embedded default when {@code file} is null. */
  public static Config load(Path file, Problems problems) {
    if (file == null) {
      try (InputStream in = ConfigLoader.class.getResourceAsStream("/" + DEFAULT_RESOURCE)) {
        if (in == null) {
          throw new IllegalStateException("the jar has no " + DEFAULT_RESOURCE);
        }
        return read(DEFAULT_NAME, new InputStreamReader(in, StandardCharsets.UTF_8), problems);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      return read(file.toString(), r, problems);
    } catch (NoSuchFileException e) {
      problems.error(new SourceRef(file.toString(), 0), "no such file");
    } catch (IOException e) {
      problems.error(new SourceRef(file.toString(), 0), "cannot read: " + e.getMessage());
    }
    return null;
  }

  /** Reads one document; returns {@code null} only when it is not YAML at all. */
  public static Config read(String name, Reader reader, Problems problems) {
    YamlReader y = new YamlReader(name, problems);
    Node root = y.compose(reader);
    if (root == null) {
      return problems.hasErrors() ? null : emptyConfig(name);
    }
    MapView top = y.map(root, "the configuration");
    if (top == null) {
      return null;
    }
    List<Listener> listeners = listeners(y, top.get("listeners"));
    HostPort admin = admin(y, top.get("admin"));
    List<Variable> variables = variables(y, top.get("variables"));
    Config.Policy policy = policy(y, top.get("policy"));
    List<HostPort> servers = new ArrayList<>();
    Map<String, IpLiteral> hosts = resolver(y, top.get("resolver"), servers);
    String logPath = decisionLog(y, top.get("decisionLog"));
    int cacheMax = cache(y, top.get("cache"));
    Config.Timeouts timeouts = timeouts(y, top.get("timeouts"));
    Config.Tunnel tunnel = tunnel(y, top.get("tunnel"));
    Duration drain = shutdown(y, top.get("shutdown"));
    Config.ParentProxy parent = upstream(y, top.get("upstream"));
    Config.Limits limits = limits(y, top.get("limits"));
    top.finish();
    return new Config(name, listeners, admin, variables, policy, hosts, List.copyOf(servers),
        logPath, cacheMax, timeouts, tunnel, drain, parent, limits);
  }

  private static Config emptyConfig(String name) {
    return new Config(
        name,
        List.of(),
        null,
        List.of(),
        new Config.Policy(EnforcementMode.ENFORCE, List.of(), List.of(), List.of(), List.of()),
        Map.of(),
        List.of(),
        null,
        Config.DEFAULT_CACHE_MAX_ENTRIES,
        Config.Timeouts.DEFAULTS,
        Config.Tunnel.DEFAULTS,
        Config.DEFAULT_SHUTDOWN_DRAIN,
        null,
        Config.Limits.DEFAULTS);
  }

  private static List<Listener> listeners(YamlReader y, Node node) {
    if (node == null) {
      return List.of();
    }
    List<Listener> out = new ArrayList<>();
    Map<String, Listener> byName = new HashMap<>();
    Map<HostPort, Listener> byBind = new HashMap<>();
    int index = 0;
    for (Node item : y.list(node, "listeners")) {
      String what = "listeners[" + index++ + "]";
      MapView m = y.map(item, what);
      if (m == null) {
        continue;
      }
      String name = str(y, m.require("name"), what + ".name");
      Node modeNode = m.require("mode");
      String modeText = str(y, modeNode, what + ".mode");
      Listener.Mode mode = modeText == null ? null : Listener.Mode.fromId(modeText);
      if (modeText != null && mode == null) {
        y.error(modeNode, what + ".mode must be http-proxy, tls-sni or http-host, not '" + modeText
            + "'");
      }
      Node bindNode = m.require("bind");
      HostPort bind = bind(y, bindNode, what + ".bind");
      Node upNode = m.get("upstreamPort");
      Integer upstream = upNode == null ? null : y.port(upNode, what + ".upstreamPort");
      Node tlsNode = m.get("tls");
      Listener.Tls tls = tlsNode == null ? null : tls(y, tlsNode, what + ".tls");
      Node transparentNode = m.get("transparent");
      boolean transparent = transparentNode != null
          && y.bool(transparentNode, what + ".transparent", false);
      m.finish();
      if (transparent && mode == Listener.Mode.HTTP_PROXY) {
        y.error(transparentNode, what + ": transparent applies to tls-sni and http-host listeners"
            + " (traffic redirected by TPROXY); an http-proxy listener is addressed by its clients");
      }
      if (tlsNode != null && mode != null && mode != Listener.Mode.HTTP_PROXY) {
        y.error(tlsNode, what + ": tls applies to http-proxy listeners (an HTTPS proxy); a "
            + mode.id() + " listener never terminates TLS");
      }
      if (mode == Listener.Mode.HTTP_PROXY && upNode != null) {
        y.error(upNode, what + ": upstreamPort applies to tls-sni and http-host listeners only;"
            + " an http-proxy takes the port from each request");
      }
      int up = upstream != null ? upstream : mode == Listener.Mode.HTTP_HOST ? 80 : 443;
      if (name == null || mode == null || bind == null) {
        continue;
      }
      Listener l = new Listener(name, mode, bind, mode == Listener.Mode.HTTP_PROXY ? 0 : up,
          mode == Listener.Mode.HTTP_PROXY ? tls : null,
          transparent && mode != Listener.Mode.HTTP_PROXY, y.at(item));
      Listener sameName = byName.putIfAbsent(name, l);
      if (sameName != null) {
        y.error(item, "two listeners are named '" + name + "' (the other at line "
            + sameName.at().line() + "); names appear in logs and metrics and must differ");
      }
      Listener sameBind = bind.port() == 0 ? null : byBind.putIfAbsent(bind, l); // 0: any port
      if (sameBind != null) {
        y.error(bindNode, "listener '" + name + "' binds " + bind + ", as does '"
            + sameBind.name() + "' (line " + sameBind.at().line() + ")");
      }
      out.add(l);
    }
    return List.copyOf(out);
  }

  private static Listener.Tls tls(YamlReader y, Node node, String what) {
    MapView m = y.map(node, what);
    if (m == null) {
      return null;
    }
    Node cert = m.get("certFile");
    Node key = m.get("keyFile");
    Node self = m.get("selfSigned");
    Node dir = m.get("dir");
    Node names = m.get("names");
    m.finish();
    boolean selfSigned = self != null && y.bool(self, what + ".selfSigned", false);
    if (selfSigned == (cert != null || key != null)) {
      y.error(node, what + " needs either certFile and keyFile, or selfSigned: true");
      return null;
    }
    if (!selfSigned && (cert == null || key == null)) {
      y.error(node, what + " needs both certFile and keyFile (PEM)");
      return null;
    }
    String certPath = str(y, cert, what + ".certFile");
    String keyPath = str(y, key, what + ".keyFile");
    String dirPath = dir == null ? "tls" : str(y, dir, what + ".dir");
    List<String> nameList = names == null ? List.of()
        : y.strings(names, what + ".names", n -> {
          if (HostName.normalize(n) == null && IpLiteral.parse(n) == null) {
            y.error(names, what + ".names: '" + n + "' is neither a host name nor an IP address");
            return null;
          }
          return n;
        });
    return new Listener.Tls(certPath == null ? null : Path.of(certPath),
        keyPath == null ? null : Path.of(keyPath), selfSigned,
        dirPath == null ? Path.of("tls") : Path.of(dirPath), List.copyOf(nameList));
  }

  private static HostPort admin(YamlReader y, Node node) {
    if (node == null) {
      return null;
    }
    MapView m = y.map(node, "admin");
    if (m == null) {
      return null;
    }
    HostPort bind = bind(y, m.require("bind"), "admin.bind");
    m.finish();
    return bind;
  }

  private static HostPort bind(YamlReader y, Node node, String what) {
    if (node == null) {
      return null;
    }
    String text = str(y, node, what);
    if (text == null) {
      return null;
    }
    HostPort hp = HostPort.parse(text);
    if (hp == null) {
      y.error(node, what + " must be an IP address and a port, e.g. 0.0.0.0:3128 or [::]:3128,"
          + " not '" + text + "'");
    }
    return hp;
  }

  private static List<Variable> variables(YamlReader y, Node node) {
    if (node == null) {
      return List.of();
    }
    MapView m = y.map(node, "variables");
    if (m == null) {
      return List.of();
    }
    List<Variable> out = new ArrayList<>();
    for (NodeTuple t : m.tuples()) {
      String name = ((ScalarNode) t.getKeyNode()).getValue();
      m.get(name);
      if (!name.matches("[A-Za-z][A-Za-z0-9_]*")) {
        y.error(t.getKeyNode(), "variable name '" + name + "' must be a word (letters, digits, _)");
        continue;
      }
      String value = str(y, t.getValueNode(), "variables." + name);
      if (value == null) {
        continue;
      }
      if (!value.equals("*") && HostName.normalize("x." + value) == null) {
        y.error(t.getValueNode(), "variables." + name + " must be '*' (any one label) or a DNS"
            + " name part such as 'eastus' or 'universe.example.local', not '" + value + "'");
        continue;
      }
      String canonical = value.equals("*") ? value : HostName.normalize("x." + value).substring(2);
      out.add(new Variable(name, canonical, y.at(t.getKeyNode())));
    }
    return List.copyOf(out);
  }

  private static Config.Policy policy(YamlReader y, Node node) {
    List<CatalogRef> catalogs = new ArrayList<>();
    List<CatalogDir> dirs = new ArrayList<>();
    List<LocalRule> rules = new ArrayList<>();
    List<Cidr> allowDest = new ArrayList<>();
    List<Config.Source> sources = List.of();
    EnforcementMode mode = EnforcementMode.ENFORCE;
    MapView m = node == null ? null : y.map(node, "policy");
    if (m != null) {
      Node modeNode = m.get("mode");
      if (modeNode != null) {
        String text = str(y, modeNode, "policy.mode");
        if ("enforce".equals(text)) {
          mode = EnforcementMode.ENFORCE;
        } else if ("report".equals(text)) {
          mode = EnforcementMode.REPORT;
        } else if (text != null) {
          y.error(modeNode, "policy.mode must be 'enforce' or 'report', not '" + text + "'");
        }
      }
      catalogs.addAll(catalogRefs(y, m.get("catalogs"), "policy.catalogs"));
      Node dirNode = m.get("catalogDirs");
      if (dirNode != null) {
        for (Node item : y.list(dirNode, "policy.catalogDirs")) {
          String d = str(y, item, "each of policy.catalogDirs");
          if (d != null) {
            dirs.add(new CatalogDir(Path.of(d), y.at(item)));
          }
        }
      }
      rules.addAll(localRules(y, m.get("rules"), "policy.rules"));
      allowDest.addAll(cidrs(y, m.get("allowDestinationCidrs"),
          "policy.allowDestinationCidrs"));
      sources = sources(y, m.get("sources"));
      m.finish();
    }
    return new Config.Policy(mode, List.copyOf(catalogs), List.copyOf(dirs), List.copyOf(rules),
        List.copyOf(allowDest), sources);
  }

  private static List<CatalogRef> catalogRefs(YamlReader y, Node node, String what) {
    List<CatalogRef> out = new ArrayList<>();
    if (node == null) {
      return out;
    }
    Map<String, Integer> seen = new LinkedHashMap<>();
    for (Node item : y.list(node, what)) {
      String name = str(y, item, "each of " + what);
      if (name == null) {
        continue;
      }
      Integer first = seen.putIfAbsent(name, y.at(item).line());
      if (first != null) {
        y.warning(item, "catalog '" + name + "' is listed twice (also at line " + first + ")");
        continue;
      }
      out.add(new CatalogRef(name, y.at(item)));
    }
    return out;
  }

  private static List<LocalRule> localRules(YamlReader y, Node node, String what) {
    List<LocalRule> out = new ArrayList<>();
    if (node != null) {
      for (Node item : y.list(node, what)) {
        LocalRule r = localRule(y, item);
        if (r != null) {
          out.add(r);
        }
      }
    }
    return out;
  }

  private static List<Cidr> cidrs(YamlReader y, Node node, String what) {
    List<Cidr> out = new ArrayList<>();
    if (node != null) {
      for (Node item : y.list(node, what)) {
        String text = str(y, item, "each of " + what);
        if (text == null) {
          continue;
        }
        try {
          out.add(Cidr.parse(text));
        } catch (PatternException e) {
          y.error(item, e.getMessage());
        }
      }
    }
    return out;
  }

  private static final java.util.regex.Pattern SOURCE_NAME =
      java.util.regex.Pattern.compile("[a-z0-9]([a-z0-9._-]{0,62})");
  private static final java.util.regex.Pattern SHA256_HEX =
      java.util.regex.Pattern.compile("[0-9a-f]{64}");

  /**
   * {@code policy.sources}: named client groups, in the order they are tried. A user name may
   * appear in several sources only with the same hash, so one verification serves them all.
   */
  private static List<Config.Source> sources(YamlReader y, Node node) {
    if (node == null) {
      return List.of();
    }
    List<Config.Source> out = new ArrayList<>();
    Map<String, Integer> names = new HashMap<>();
    Map<String, Config.User> users = new HashMap<>();
    Map<String, Config.Token> tokens = new HashMap<>();
    Config.Source catchAll = null;
    List<Node> items = y.list(node, "policy.sources");
    if (items.isEmpty() && node instanceof org.yaml.snakeyaml.nodes.SequenceNode) {
      y.error(node, "policy.sources must name at least one source (leave it out to give every"
          + " client the top-level policy)");
    }
    for (Node item : items) {
      MapView m = y.map(item, "a source");
      if (m == null) {
        continue;
      }
      Node nameNode = m.require("name");
      String name = nameNode == null ? null : str(y, nameNode, "a source's name");
      if (name != null && !SOURCE_NAME.matcher(name).matches()) {
        y.error(nameNode, "source name '" + name + "' must be lower-case letters, digits, '.',"
            + " '_' or '-' (it becomes a metric label), at most 63 characters");
        name = null;
      }
      if (name != null) {
        Integer first = names.putIfAbsent(name, y.at(nameNode).line());
        if (first != null) {
          y.error(nameNode, "source '" + name + "' is defined twice (also at line " + first
              + ")");
        }
      }
      String what = "source '" + (name == null ? "?" : name) + "'";
      List<Cidr> clients = cidrs(y, m.get("clients"), what + " clients");
      List<Config.User> userList = new ArrayList<>();
      Node usersNode = m.get("users");
      if (usersNode != null) {
        for (Node u : y.list(usersNode, what + " users")) {
          Config.User user = user(y, u, what);
          if (user == null) {
            continue;
          }
          Config.User prev = users.putIfAbsent(user.name(), user);
          if (prev != null && !prev.passwordHash().equals(user.passwordHash())) {
            y.error(u, "user '" + user.name() + "' has another password hash at line "
                + prev.at().line() + "; a user name has one password in all sources");
            continue;
          }
          userList.add(user);
        }
      }
      List<Config.Token> tokenList = new ArrayList<>();
      Node tokensNode = m.get("tokens");
      if (tokensNode != null) {
        for (Node t : y.list(tokensNode, what + " tokens")) {
          Config.Token token = token(y, t, what);
          if (token == null) {
            continue;
          }
          Config.Token prev = tokens.putIfAbsent(token.sha256(), token);
          if (prev != null && !prev.name().equals(token.name())) {
            y.error(t, "this token's hash is also token '" + prev.name() + "' at line "
                + prev.at().line() + "; one token has one name");
            continue;
          }
          tokenList.add(token);
        }
      }
      List<CatalogRef> catalogs = catalogRefs(y, m.get("catalogs"), what + " catalogs");
      List<LocalRule> rules = localRules(y, m.get("rules"), what + " rules");
      Node maxNode = m.get("maxConnections");
      Integer max = maxNode == null ? Integer.valueOf(Config.Source.NO_LIMIT)
          : y.integer(maxNode, what + " maxConnections", 1, 10_000_000);
      m.finish();
      if (name == null) {
        continue;
      }
      Config.Source src = new Config.Source(name, List.copyOf(clients), List.copyOf(userList),
          List.copyOf(tokenList), List.copyOf(catalogs), List.copyOf(rules),
          max == null ? Config.Source.NO_LIMIT : max, y.at(nameNode));
      if (catchAll != null) {
        y.warning(nameNode, "source '" + name + "' is never used: source '" + catchAll.name()
            + "' (line " + catchAll.at().line() + ") has neither clients nor credentials and"
            + " takes every client first");
      } else if (clients.isEmpty() && !src.needsCredentials()) {
        catchAll = src;
      }
      out.add(src);
    }
    return List.copyOf(out);
  }

  private static Config.User user(YamlReader y, Node node, String what) {
    MapView m = y.map(node, "a user of " + what);
    if (m == null) {
      return null;
    }
    Node nameNode = m.require("name");
    Node hashNode = m.require("passwordHash");
    m.finish();
    String name = nameNode == null ? null : str(y, nameNode, "a user's name");
    String hash = hashNode == null ? null : str(y, hashNode, "passwordHash");
    if (name != null && (name.indexOf(':') >= 0 || name.chars().anyMatch(ch -> ch < 0x21))) {
      y.error(nameNode, "user name '" + name + "' must not contain ':', spaces or control"
          + " characters (Basic credentials are user:password)");
      return null;
    }
    if (hash != null) {
      try {
        org.egressproxy.auth.PasswordHash.parse(hash);
      } catch (IllegalArgumentException e) {
        y.error(hashNode, e.getMessage());
        return null;
      }
    }
    return name == null || hash == null ? null : new Config.User(name, hash, y.at(nameNode));
  }

  private static Config.Token token(YamlReader y, Node node, String what) {
    MapView m = y.map(node, "a token of " + what);
    if (m == null) {
      return null;
    }
    Node nameNode = m.require("name");
    Node hashNode = m.require("sha256");
    m.finish();
    String name = nameNode == null ? null : str(y, nameNode, "a token's name");
    String hash = hashNode == null ? null : str(y, hashNode, "sha256");
    if (hash != null && !SHA256_HEX.matcher(hash).matches()) {
      y.error(hashNode, "sha256 must be the token's SHA-256 in 64 lower-case hex digits (e.g."
          + " 'printf %s \"$TOKEN\" | sha256sum', or 'egress-proxy hash --token'), never the"
          + " token itself");
      return null;
    }
    return name == null || hash == null ? null : new Config.Token(name, hash, y.at(nameNode));
  }

  private static LocalRule localRule(YamlReader y, Node item) {
    MapView m = y.map(item, "a policy rule");
    if (m == null) {
      return null;
    }
    Node allow = m.get("allow");
    Node deny = m.get("deny");
    List<Integer> ports = y.ports(m, "ports");
    Node protoNode = m.get("protocol");
    m.finish();
    if ((allow == null) == (deny == null)) {
      y.error(item, "a policy rule needs exactly one of 'allow:' or 'deny:'");
      return null;
    }
    int protocols = Protocol.ANY;
    if (protoNode != null) {
      String p = str(y, protoNode, "protocol");
      Protocol proto = p == null ? null : Protocol.fromId(p);
      if (p != null && proto == null && !p.equals("any")) {
        y.error(protoNode, "protocol must be tls, http or any, not '" + p + "'");
      } else if (proto != null) {
        protocols = proto.bit();
      }
    }
    Node patternNode = allow != null ? allow : deny;
    String pattern = str(y, patternNode, allow != null ? "allow" : "deny");
    if (pattern == null) {
      return null;
    }
    PortSet portSet = ports == null || ports.isEmpty()
        ? null
        : PortSet.of(ports.stream().mapToInt(Integer::intValue).toArray());
    return new LocalRule(deny != null, pattern, portSet, protocols, y.at(patternNode));
  }

  private static Map<String, IpLiteral> resolver(YamlReader y, Node node, List<HostPort> servers) {
    if (node == null) {
      return Map.of();
    }
    MapView m = y.map(node, "resolver");
    if (m == null) {
      return Map.of();
    }
    Map<String, IpLiteral> out = new LinkedHashMap<>();
    Node hosts = m.get("hosts");
    Node serversNode = m.get("servers");
    m.finish();
    if (serversNode != null) {
      for (Node item : y.list(serversNode, "resolver.servers")) {
        String text = str(y, item, "each of resolver.servers");
        if (text == null) {
          continue;
        }
        HostPort hp = HostPort.parse(text);
        if (hp == null) {
          IpLiteral ip = IpLiteral.parse(text);
          hp = ip == null ? null : new HostPort(ip, 53);
        }
        if (hp == null || hp.port() == 0) {
          y.error(item, "resolver.servers: '" + text + "' must be an IP address, optionally with a"
              + " port (10.0.0.10, 10.0.0.10:53, [fd00::10]:53)");
        } else {
          servers.add(hp);
        }
      }
    }
    if (hosts == null) {
      return Map.of();
    }
    MapView h = y.map(hosts, "resolver.hosts");
    if (h == null) {
      return Map.of();
    }
    for (NodeTuple t : h.tuples()) {
      String raw = ((ScalarNode) t.getKeyNode()).getValue();
      h.get(raw);
      String name = HostName.normalize(raw);
      if (name == null) {
        y.error(t.getKeyNode(), "resolver.hosts: '" + raw + "' is not a valid host name");
        continue;
      }
      String value = str(y, t.getValueNode(), "resolver.hosts." + raw);
      IpLiteral ip = value == null ? null : IpLiteral.parse(value);
      if (value != null && ip == null) {
        y.error(t.getValueNode(), "resolver.hosts." + raw + " must be an IP address, not '"
            + value + "'");
        continue;
      }
      if (ip != null && out.put(name, ip) != null) {
        y.error(t.getKeyNode(), "resolver.hosts lists '" + name + "' twice");
      }
    }
    return Map.copyOf(out);
  }

  private static String decisionLog(YamlReader y, Node node) {
    if (node == null) {
      return null;
    }
    MapView m = y.map(node, "decisionLog");
    if (m == null) {
      return null;
    }
    String path = str(y, m.require("path"), "decisionLog.path");
    m.finish();
    return path;
  }

  private static int cache(YamlReader y, Node node) {
    if (node == null) {
      return Config.DEFAULT_CACHE_MAX_ENTRIES;
    }
    MapView m = y.map(node, "cache");
    if (m == null) {
      return Config.DEFAULT_CACHE_MAX_ENTRIES;
    }
    Node max = m.get("maxEntries");
    m.finish();
    if (max == null) {
      return Config.DEFAULT_CACHE_MAX_ENTRIES;
    }
    Integer v = y.integer(max, "cache.maxEntries", 0, 100_000_000);
    return v == null ? Config.DEFAULT_CACHE_MAX_ENTRIES : v;
  }

  private static Config.Timeouts timeouts(YamlReader y, Node node) {
    Config.Timeouts d = Config.Timeouts.DEFAULTS;
    if (node == null) {
      return d;
    }
    MapView m = y.map(node, "timeouts");
    if (m == null) {
      return d;
    }
    Duration connect = duration(y, m.get("connect"), "timeouts.connect", d.connect());
    Duration clientHello = duration(y, m.get("clientHello"), "timeouts.clientHello",
        d.clientHello());
    Duration idle = duration(y, m.get("idle"), "timeouts.idle", d.idle());
    Duration dns = duration(y, m.get("dns"), "timeouts.dns", d.dns());
    Duration requestHead = duration(y, m.get("requestHead"), "timeouts.requestHead",
        d.requestHead());
    Duration response = duration(y, m.get("response"), "timeouts.response", d.response());
    m.finish();
    return new Config.Timeouts(connect, clientHello, idle, dns, requestHead, response);
  }

  /** {@code 500ms}, {@code 10s}, {@code 5m}, {@code 1h}, {@code 2d}; at least 1 ms. */
  private static Duration duration(YamlReader y, Node node, String what, Duration dflt) {
    if (node == null) {
      return dflt;
    }
    String text = y.string(node, what);
    if (text == null) {
      return dflt;
    }
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d{1,9})(ms|s|m|h|d)")
        .matcher(text.strip());
    if (!m.matches() || Long.parseLong(m.group(1)) == 0) {
      y.error(node, what + " must be a positive duration such as 500ms, 10s, 5m, 1h or 2d, not '"
          + text + "'");
      return dflt;
    }
    long v = Long.parseLong(m.group(1));
    return switch (m.group(2)) {
      case "ms" -> Duration.ofMillis(v);
      case "s" -> Duration.ofSeconds(v);
      case "m" -> Duration.ofMinutes(v);
      case "h" -> Duration.ofHours(v);
      default -> Duration.ofDays(v);
    };
  }

  private static Config.ParentProxy upstream(YamlReader y, Node node) {
    if (node == null) {
      return null;
    }
    MapView m = y.map(node, "upstream");
    if (m == null) {
      return null;
    }
    Node proxyNode = m.get("proxy");
    Node noProxyNode = m.get("noProxy");
    m.finish();
    List<String> noProxy = noProxyNode == null ? List.of()
        : y.strings(noProxyNode, "upstream.noProxy", s -> {
          try {
            if (Cidr.looksLikeCidr(s)) {
              Cidr.parse(s);
            } else {
              org.egressproxy.match.NamePattern.parse(s);
            }
            return s;
          } catch (PatternException e) {
            y.error(noProxyNode, "upstream.noProxy: " + e.getMessage());
            return null;
          }
        });
    if (proxyNode == null) {
      if (noProxyNode != null) {
        y.error(noProxyNode, "upstream.noProxy needs upstream.proxy");
      }
      return null;
    }
    String text = str(y, proxyNode, "upstream.proxy");
    if (text == null) {
      return null;
    }
    java.util.regex.Matcher mm = java.util.regex.Pattern
        .compile("(http|socks5)://([^/@:\\[\\]]+|\\[[0-9a-fA-F:.]+\\]):(\\d{1,5})/?").matcher(text);
    if (!mm.matches() || Integer.parseInt(mm.group(3)) < 1
        || Integer.parseInt(mm.group(3)) > 65535) {
      y.error(proxyNode, "upstream.proxy must be http://HOST:PORT or socks5://HOST:PORT, not '"
          + text + "'");
      return null;
    }
    String host = mm.group(2).startsWith("[") ? mm.group(2).substring(1, mm.group(2).length() - 1)
        : mm.group(2);
    return new Config.ParentProxy(mm.group(1), host, Integer.parseInt(mm.group(3)), noProxy,
        y.at(proxyNode));
  }

  private static Config.Limits limits(YamlReader y, Node node) {
    Config.Limits d = Config.Limits.DEFAULTS;
    if (node == null) {
      return d;
    }
    MapView m = y.map(node, "limits");
    if (m == null) {
      return d;
    }
    Node total = m.get("maxConnections");
    Node perClient = m.get("maxConnectionsPerClient");
    m.finish();
    Integer t = total == null ? null : y.integer(total, "limits.maxConnections", 1, 10_000_000);
    Integer c = perClient == null ? null
        : y.integer(perClient, "limits.maxConnectionsPerClient", 1, 10_000_000);
    return new Config.Limits(t != null ? t : d.maxConnections(),
        c != null ? c : d.maxConnectionsPerClient());
  }

  private static Duration shutdown(YamlReader y, Node node) {
    if (node == null) {
      return Config.DEFAULT_SHUTDOWN_DRAIN;
    }
    MapView m = y.map(node, "shutdown");
    if (m == null) {
      return Config.DEFAULT_SHUTDOWN_DRAIN;
    }
    Duration d = duration(y, m.get("drain"), "shutdown.drain", Config.DEFAULT_SHUTDOWN_DRAIN);
    m.finish();
    return d;
  }

  private static Config.Tunnel tunnel(YamlReader y, Node node) {
    Config.Tunnel d = Config.Tunnel.DEFAULTS;
    MapView m = node == null ? null : y.map(node, "tunnel");
    if (m == null) {
      return d;
    }
    boolean match = y.bool(m.get("requireSniMatch"), "tunnel.requireSniMatch",
        d.requireSniMatch());
    boolean refuseEch = y.bool(m.get("refuseEch"), "tunnel.refuseEch", d.refuseEch());
    boolean splice = y.bool(m.get("splice"), "tunnel.splice", d.splice());
    m.finish();
    return new Config.Tunnel(match, refuseEch, splice);
  }

  private static String str(YamlReader y, Node node, String what) {
    return node == null ? null : y.string(node, what);
  }
}
