// The anychain binary as a subprocess: usage errors (exit 2), per-command --help, daemon not
// running (exit 3), and the config commands against a real control socket served by a test
// Handler (the daemon's side), in text and JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "test_support.h"

using anychain::test::CliResult;
using anychain::test::Loop;
using anychain::test::TestHandler;
using ::testing::HasSubstr;
namespace ctl = anychain::control;
namespace cfg = anychain::config;
using ctl::json;

namespace {

CliResult cli(const std::vector<std::string>& args) { return anychain::test::run_cli(ANYCHAIN_CLI_BIN, args); }

TEST(CliUsage, BadUsageExitsTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{}, "Usage: anychain"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"service"}, "'service' needs an action: add, del or list"},
      {{"service", "rename", "x"}, "unknown action 'service rename'"},
      {{"stats", "--bogus"}, "unrecognised option '--bogus'"},
      {{"stats", "--count", "2"}, "--count needs --watch"},
      {{"stats", "--watch", "0"}, "--watch takes 0.1..3600 seconds"},
      {{"flows", "--spi", "0"}, "--spi must be 1..16777215"},
      {{"flows", "--limit", "ten"}, "the argument ('ten') for option '--limit' is invalid"},
      {{"flows", "extra"}, "'flows' takes no arguments"},
      {{"attach"}, "'attach' needs exactly one interface name"},
      {{"attach", "eth0", "--mode", "turbo"}, "unsupported mode 'turbo' (native, generic or auto)"},
      {{"detach", "a", "b"}, "'detach' needs exactly one interface name"},
      {{"service", "add", "fw", "--id", "5000", "--anycast", "10.1.0.1"}, "'id' = 5000 out of range 1..1023"},
      {{"service", "add", "fw", "--id", "1"}, "missing required key 'anycast'"},
      {{"chain", "add", "c", "--spi", "99999999", "--services", "fw"}, "'spi' = 99999999 out of range"},
      {{"policy", "add", "p", "--chain", "c", "--dport", "80"}, "dport needs proto tcp or udp"},
      {{"policy", "add", "p", "--chain", "c", "--symmetric", "maybe"}, "--symmetric takes yes or no"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--mac", "zz"},
       "bad MAC 'zz'"},
      {{"service", "del"}, "'service del' takes exactly one NAME"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "ratelimit"},
       "missing required key 'ratelimit'"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "ids",
        "--ids-sketch", "4x1000"},
       "bad sketch '4x1000'"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "firewall",
        "--fw-rule", "drop dport 53"},
       "dport needs proto tcp or udp"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "firewall",
        "--fw-rule", "drop src"},
       "'src' needs a value"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "firewall",
        "--idle-timeout", "5"},
       "--idle-timeout is for --nf nat or --nf monitor"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "monitor",
        "--nat-address", "192.0.2.1"},
       "a 'nat' section in an nf: monitor instance"},
      {{"instance", "add", "i", "--id", "1", "--service", "s", "--veth", "v", "--capacity", "10", "--nf", "nat"},
       "missing required key 'nat'"},
      {{"state"}, "'state' takes exactly one NAME"},
      {{"status", "--timeout", "0"}, "--timeout must be positive"},
  };
  for (const auto& c : cases) {
    auto r = cli(c.args);
    EXPECT_EQ(r.rc, 2) << ::testing::PrintToString(c.args) << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << ::testing::PrintToString(c.args);
    EXPECT_EQ(r.out, "") << ::testing::PrintToString(c.args);
  }
}

TEST(CliUsage, HelpPerCommand) {
  auto top = cli({"--help"});
  EXPECT_EQ(top.rc, 0);
  EXPECT_THAT(top.out, HasSubstr("Exit status: 0 ok, 1 error, 2 usage error, 3 anychaind is not running."));
  for (const char* cmd : {"status", "topology", "reload", "attach", "detach", "flows", "stats"}) {
    auto r = cli({cmd, "--help"});
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_THAT(r.out, HasSubstr(std::string("Usage: anychain ") + cmd)) << cmd;
    EXPECT_THAT(r.out, HasSubstr("Examples:\n  anychain " + std::string(cmd))) << cmd;
    EXPECT_THAT(r.out, HasSubstr("--pin-root")) << cmd;
  }
  for (const char* kind : {"service", "chain", "policy", "instance"}) {
    for (const char* action : {"add", "del", "list"}) {
      auto r = cli({kind, action, "--help"});
      EXPECT_EQ(r.rc, 0) << kind << " " << action;
      EXPECT_THAT(r.out, HasSubstr(std::string("Usage: anychain ") + kind + " " + action));
    }
    auto group = cli({kind, "--help"});  // every action of the group
    EXPECT_EQ(group.rc, 0);
    EXPECT_THAT(group.out, HasSubstr(std::string("Usage: anychain ") + kind + " del"));
  }
  EXPECT_THAT(cli({"attach", "--help"}).out, HasSubstr("--mode"));
  EXPECT_THAT(cli({"stats", "--help"}).out, HasSubstr("--watch"));
  EXPECT_THAT(cli({"policy", "add", "--help"}).out, HasSubstr("--md-type"));
  auto h = cli({"help", "flows"});
  EXPECT_EQ(h.rc, 0);
  EXPECT_THAT(h.out, HasSubstr("Usage: anychain flows [--spi N] [--limit N]"));
}

// 'anychain --help' and every command's help come from the command table: each listed
// command has its own help, whose summary is the listed line, whole (not cut at a width).
TEST(CliUsage, HelpIsGeneratedFromTheCommandTable) {
  auto top = cli({"--help"});
  ASSERT_EQ(top.rc, 0);
  auto from = top.out.find("Commands:\n");
  ASSERT_NE(from, std::string::npos);
  std::istringstream lines(top.out.substr(from + 10));
  int listed = 0;
  for (std::string line; std::getline(lines, line) && !line.empty();) {
    ASSERT_GT(line.size(), 18u) << line;
    std::string name = line.substr(2, line.find("  ", 2) - 2);
    std::string brief = line.substr(18);
    EXPECT_TRUE(brief.ends_with(".")) << "cut off: " << line;
    std::vector<std::string> args;
    for (std::istringstream w(name); w >> name;) args.push_back(name);
    args.push_back("--help");
    auto h = cli(args);
    EXPECT_EQ(h.rc, 0) << line;
    EXPECT_THAT(h.out, HasSubstr("\n\n" + brief + "\n")) << line;
    ++listed;
  }
  EXPECT_EQ(listed, 21);  // status topology reload attach detach flush, 4 x (add del list), flows stats, state
  EXPECT_THAT(top.out, HasSubstr("  flush           Remove the fast path's pinned maps (--pin-root).\n"));
  EXPECT_THAT(cli({"flush", "--help"}).out, HasSubstr("Refused while anychaind runs"));
}

TEST(CliUsage, AliasesAndGlobalOptionForms) {
  for (const char* alias : {"delete", "remove"}) {
    auto r = cli({"chain", alias, "--help"});
    EXPECT_EQ(r.rc, 0) << alias;
    EXPECT_THAT(r.out, HasSubstr("Usage: anychain chain del NAME")) << alias;
  }
  for (const char* alias : {"ls", "show"})
    EXPECT_THAT(cli({"instance", alias, "--help"}).out, HasSubstr("Usage: anychain instance list")) << alias;
  // global options before the command, with their value in the next word or after '='
  for (std::vector<std::string> args : {std::vector<std::string>{"--socket", "/nonexistent/x.sock", "status"},
                                        {"--socket=/nonexistent/x.sock", "status"},
                                        {"-s", "/nonexistent/x.sock", "--timeout", "1", "-j", "topology"},
                                        {"--json", "policy", "ls", "--socket", "/nonexistent/x.sock"}}) {
    auto r = cli(args);
    EXPECT_EQ(r.rc, 3) << ::testing::PrintToString(args) << r.err;
    EXPECT_THAT(r.err, HasSubstr("nothing listens on /nonexistent/x.sock")) << ::testing::PrintToString(args);
  }
}

TEST(CliUsage, DaemonNotRunningExitsThree) {
  for (const char* cmd : {"status", "topology", "reload"}) {
    auto r = cli({cmd, "--socket", "/nonexistent/anychaind.sock"});
    EXPECT_EQ(r.rc, 3) << cmd;
    EXPECT_THAT(r.err, HasSubstr("anychaind is not running (nothing listens on /nonexistent/anychaind.sock)"));
  }
  auto r = cli({"--socket", "/nonexistent/x.sock", "service", "list"});  // global option before the command
  EXPECT_EQ(r.rc, 3);
}

class CliDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("anychain-cli-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    conf_ = (dir_ / "anychaind.yaml").string();
    std::filesystem::copy_file(ANYCHAIN_EXAMPLE_CONFIG, conf_);
    auto store = ctl::ConfigStore::load(conf_);
    ASSERT_TRUE(store.has_value());
    handler_ = std::make_unique<TestHandler>(std::move(*store));
    sock_ = (dir_ / "ctl.sock").string();
    loop_ = std::make_unique<Loop>(*handler_, ctl::Server::Options{.path = sock_});
    ASSERT_EQ(loop_->error, "");
  }
  void TearDown() override {
    loop_.reset();
    std::filesystem::remove_all(dir_);
  }
  CliResult run(std::vector<std::string> args) {
    args.insert(args.end(), {"--socket", sock_});
    return cli(args);
  }
  std::filesystem::path dir_;
  std::string conf_, sock_;
  std::unique_ptr<TestHandler> handler_;
  std::unique_ptr<Loop> loop_;
};

TEST_F(CliDaemon, ListsAsTablesAndJson) {
  auto r = run({"service", "list"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME  ID  ANYCAST\n"
            "fw    1   10.100.0.1/32\n"
            "ids   2   10.100.0.2/32\n"
            "nat   3   10.100.0.3/32\n");
  r = run({"chain", "list"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("web   10   255: fw -> 254: ids -> 253: end\n"));
  r = run({"policy", "list"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(r.out,
            "#  NAME      CHAIN  SRC              DST          PROTO  SPORT  DPORT       SYMMETRIC  MD\n"
            "0  web-in    web    any              10.0.2.0/24  tcp    any    80          yes        1\n"
            "1  high-udp  out    10.0.1.0/24      any          udp    any    1024-65535  default    2\n"
            "2  v6-any    out    2001:db8:1::/48  any          any    any    any         default    1\n");
  r = run({"instance", "list", "--json"});
  ASSERT_EQ(r.rc, 0);
  json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["mac"], "02:00:00:00:01:01");
  EXPECT_EQ(j[1]["nsh_aware"], false);

  r = run({"status", "--json"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(json::parse(r.out)["node"]["nsh_endpoint"], "10.255.0.1");
  r = run({"status"});
  EXPECT_EQ(r.out, "node:\n  nsh_endpoint: 10.255.0.1\nuptime_s: 5\n");
}

TEST_F(CliDaemon, AddDelPersistAndRefusals) {
  auto r = run({"service", "add", "dns", "--id", "9", "--anycast", "10.100.0.9/32"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "added service dns\n");
  r = run({"chain", "add", "d", "--spi", "40", "--services", "dns,fw"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run({"policy", "add", "dns-in", "--chain", "d", "--proto", "udp", "--dport", "53", "--index", "0",
           "--symmetric", "yes", "--md-type", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), (json{{"name", "dns-in"}, {"chain", "d"}, {"src", "any"}, {"dst", "any"},
                                      {"proto", "udp"}, {"dport", "53"}, {"symmetric", true}, {"md_type", 2}}));
  r = run({"instance", "add", "dns-a", "--id", "300", "--service", "dns", "--veth", "vdns", "--capacity", "1e5",
           "--nsh-aware", "no"});
  ASSERT_EQ(r.rc, 0) << r.err;

  auto file = cfg::load_file(conf_);
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->policies.front().name, "dns-in");
  EXPECT_EQ(file->policies.front().md_type, 2);
  EXPECT_EQ(file->instances.back().capacity, 100000u);
  EXPECT_EQ(file->chains.back().services, (std::vector<std::string>{"dns", "fw"}));

  // the daemon refuses what would break the config: runtime error, exit 1, its message
  r = run({"service", "del", "dns"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "anychain: cannot delete service 'dns': chain 'd': unknown service 'dns'; instance 'dns-a': "
                   "unknown service 'dns': Invalid argument\n");
  EXPECT_EQ(r.out, "");
  r = run({"service", "add", "dns", "--id", "10", "--anycast", "10.100.0.10"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("service 'dns' already exists"));
  r = run({"chain", "del", "nope"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("no chain named 'nope'"));

  for (auto [kind, name] : {std::pair{"instance", "dns-a"}, {"policy", "dns-in"}, {"chain", "d"}, {"service", "dns"}}) {
    r = run({kind, "del", name});
    EXPECT_EQ(r.rc, 0) << kind << ": " << r.err;
    EXPECT_EQ(r.out, std::string("deleted ") + kind + " " + name + "\n");
  }
  file = cfg::load_file(conf_);
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->services.size(), 3u);
}

TEST_F(CliDaemon, AttachDetachGoThroughTheDaemon) {
  auto r = run({"attach", "eth7", "--mode", "generic", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["via"], "anychaind");
  EXPECT_EQ(j["mode"], "generic");
  r = run({"attach", "nosuch0"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("interface 'nosuch0' does not exist"));
  r = run({"detach", "eth7"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "detached from eth7\n");
  auto calls = handler_->calls();
  EXPECT_EQ(calls, (std::vector<std::string>{"attach eth7 generic", "attach nosuch0 auto", "detach eth7"}));
}

}  // namespace

// --replica-records and --reorder-wait-us become the entry's ftc: map, checked with the file's
// rules: the example's services are on no FTC chain, so the entry is refused naming why; without
// --nf the keys are refused as anychain-nf's.
TEST_F(CliDaemon, NfFtcLimitsPerInstanceReachTheConfigRules) {
  auto r = run({"instance", "add", "mon1", "--id", "52", "--service", "fw", "--veth", "nf-mon1", "--capacity", "1000",
                "--nf", "monitor", "--replica-records", "100000", "--reorder-wait-us", "200"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("ftc: replica_records/reorder_wait_us on service 'fw', which is on no FTC chain"),
            std::string::npos) << r.err;
  r = run({"instance", "add", "v1", "--id", "53", "--service", "fw", "--veth", "v1", "--capacity", "1000",
           "--reorder-wait-us", "200"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("'ftc' is only for a built-in network function (nf:)"), std::string::npos) << r.err;
  r = run({"instance", "add", "mon1", "--id", "52", "--service", "fw", "--veth", "nf-mon1", "--capacity", "1000",
           "--nf", "monitor", "--replica-records", "0"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("'replica_records' = 0 out of range 1..4194304"), std::string::npos) << r.err;
}

// Built-in NF instances through the daemon: --nf and its options become the config entry's keys
// (checked with the file's rules), persisted and listed.
TEST_F(CliDaemon, NfInstancesAddListAndPersist) {
  auto r = run({"instance", "add", "nat1", "--id", "50", "--service", "nat", "--veth", "nf-nat1", "--capacity", "1000",
                "--nf", "nat", "--nat-address", "192.0.2.10", "--nat-ports", "20000-20099", "--idle-timeout", "600",
                "--restart", "never"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run({"instance", "add", "fw1", "--id", "51", "--service", "fw", "--veth", "nf-fw1", "--capacity", "1000", "--nf",
           "firewall", "--fw-rule", "drop proto udp dport 53", "--fw-rule", "pass src 10.0.0.0/8", "--fw-default",
           "drop"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run({"instance", "list", "--json"});
  ASSERT_EQ(r.rc, 0);
  json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 4u);
  EXPECT_EQ(j[2]["nf"], "nat");
  EXPECT_EQ(j[2]["restart"], "never");
  EXPECT_EQ(j[2]["nat"], (json{{"address", "192.0.2.10"}, {"ports", "20000-20099"}, {"idle_timeout_s", 600}}));
  EXPECT_EQ(j[3]["firewall"]["default"], "drop");
  ASSERT_EQ(j[3]["firewall"]["rules"].size(), 2u);
  EXPECT_EQ(j[3]["firewall"]["rules"][0]["proto"], "udp");
  EXPECT_EQ(j[3]["firewall"]["rules"][0]["dport"], "53");
  EXPECT_EQ(j[3]["firewall"]["rules"][1]["src"], "10.0.0.0/8");
  r = run({"instance", "list"});
  EXPECT_THAT(r.out, HasSubstr("nat 192.0.2.10 20000-20099, restart never"));
  EXPECT_THAT(r.out, HasSubstr("firewall (2 rules, default drop), restart always"));
  // in the file, readable by the parser
  auto file = cfg::load_file(conf_);
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE(file->instances[3].nf.has_value());
  EXPECT_EQ(file->instances[3].nf->fw_rules.size(), 2u);
  EXPECT_FALSE(file->instances[2].nf->restart);
}

// state reads the published file: without one the instance is not running (exit 1)
TEST(CliUsage, StateOfAnInstanceThatDoesNotRun) {
  auto r = cli({"state", "nat1", "--run-dir", "/nonexistent/nf"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("instance 'nat1' is not running (/nonexistent/nf/nat1.json does not exist)"));
}
