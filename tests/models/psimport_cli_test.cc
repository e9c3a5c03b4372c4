// psimport's argument parsing and its --info command.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "onnx_loader/package_writer.h"
#include "onnx_loader/pipeline.h"
#include "tests/models/package_fixture.h"
#include "tools/psimport/options.h"
#include "tools/psimport/psimport.h"

namespace {

using Catch::Contains;
using ps::Code;
using ps::psimport::Command;
using ps::psimport::Grouping;
using ps::psimport::ImportMode;
using ps::psimport::parse_args;

ps::Result<ps::psimport::Options> parse(std::vector<std::string> args) { return parse_args(args); }

std::string parse_error(std::vector<std::string> args) {
  auto options = parse_args(args);
  REQUIRE_FALSE(options.ok());
  CHECK(options.status().code() == Code::kInvalidArgument);
  return options.status().message();
}

struct Run {
  int status;
  std::string out, err;
};
Run run(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int status = ps::psimport::run(args, out, err);
  return {status, out.str(), err.str()};
}

TEST_CASE("psimport parses the import command", "[psimport]") {
  auto o = parse({"models/resnet152.onnx", "-o", "out/r.psm", "--batch", "8", "--mode", "training",
                  "--grouping=per-layer", "-q"});
  REQUIRE(o.ok());
  CHECK(o->command == Command::kImport);
  CHECK(o->input == "models/resnet152.onnx");
  CHECK(o->output == "out/r.psm");
  CHECK(o->batch == 8);
  CHECK_FALSE(o->seq.has_value());
  CHECK(o->mode == ImportMode::kTraining);
  CHECK(o->grouping == Grouping::kPerLayer);
  CHECK(o->quiet);

  o = parse({"--seq=251", "bert.onnx", "--batch", "8"});
  REQUIRE(o.ok());
  CHECK(o->seq == 251);
  CHECK(o->output == "bert.psm");  // next to the input
  CHECK(o->mode == ImportMode::kInference);
  CHECK_FALSE(o->grouping.has_value());
  CHECK_FALSE(o->quiet);

  o = parse({"dir/model", "--grouping", "whole"});
  REQUIRE(o.ok());
  CHECK(o->output == "dir/model.psm");
  CHECK(o->grouping == Grouping::kWhole);

  o = parse(
      {"bert.onnx", "--mode", "training", "--skip-passes", "fuse_matmul_transpose,fuse_gelu"});
  REQUIRE(o.ok());
  CHECK(o->skip_passes == std::vector<std::string>{"fuse_matmul_transpose", "fuse_gelu"});
  o = parse({"bert.onnx", "--skip-passes=fuse_matmul_bias"});
  REQUIRE(o.ok());
  CHECK(o->skip_passes == std::vector<std::string>{"fuse_matmul_bias"});

  o = parse({"--", "-odd-name.onnx"});  // "--" ends the options
  REQUIRE(o.ok());
  CHECK(o->input == "-odd-name.onnx");
}

TEST_CASE("psimport parses --info, --zoo and --help", "[psimport]") {
  auto o = parse({"--info", "m.psm"});
  REQUIRE(o.ok());
  CHECK(o->command == Command::kInfo);
  CHECK(o->input == "m.psm");

  o = parse({"--zoo", "resnet152"});
  REQUIRE(o.ok());
  CHECK(o->command == Command::kZoo);
  CHECK(o->zoo_model == "resnet152");
  CHECK(o->output == "resnet152.onnx");
  o = parse({"--zoo=bert_base", "-o", "/tmp/b.onnx", "--quiet"});
  REQUIRE(o.ok());
  CHECK(o->output == "/tmp/b.onnx");
  CHECK(o->mode == ImportMode::kInference);
  o = parse({"--zoo", "bert_base", "--mode", "training"});
  REQUIRE(o.ok());
  CHECK(o->mode == ImportMode::kTraining);

  for (const char* help : {"-h", "--help"}) {
    o = parse({"x.onnx", help, "--batch", "oops"});
    REQUIRE(o.ok());
    CHECK(o->command == Command::kHelp);
  }
}

TEST_CASE("psimport names what is wrong with bad arguments", "[psimport]") {
  CHECK_THAT(parse_error({}), Contains("nothing to do: give MODEL.onnx to import"));
  CHECK_THAT(parse_error({"--frobnicate"}), Contains("unknown option '--frobnicate'"));
  CHECK_THAT(parse_error({"-x", "m.onnx"}), Contains("unknown option '-x'"));
  CHECK_THAT(parse_error({"m.onnx", "--batch"}), Contains("--batch needs a value"));
  CHECK_THAT(parse_error({"m.onnx", "--batch="}), Contains("--batch needs a non-empty value"));
  CHECK_THAT(parse_error({"m.onnx", "--batch", "0"}),
             Contains("--batch needs a positive integer, got '0'"));
  CHECK_THAT(parse_error({"m.onnx", "--batch", "-3"}),
             Contains("--batch needs a positive integer"));
  CHECK_THAT(parse_error({"m.onnx", "--batch", "8x"}), Contains("got '8x'"));
  CHECK_THAT(parse_error({"m.onnx", "--seq", "99999999999999999999"}),
             Contains("--seq 99999999999999999999 is too large (at most 1048576)"));
  CHECK_THAT(parse_error({"m.onnx", "--seq", "2000000"}), Contains("is too large"));
  CHECK_THAT(parse_error({"m.onnx", "--batch", "8", "--batch", "4"}),
             Contains("--batch is given more than once"));
  CHECK_THAT(parse_error({"m.onnx", "-o", "a.psm", "--output", "b.psm"}),
             Contains("--output is given more than once"));
  CHECK_THAT(parse_error({"m.onnx", "--mode", "eval"}),
             Contains("--mode must be inference or training, got 'eval'"));
  CHECK_THAT(parse_error({"m.onnx", "--grouping", "optimal"}),
             Contains("--grouping must be per-layer, blocks or whole, got 'optimal'"));
  CHECK_THAT(parse_error({"m.onnx", "--quiet=yes"}), Contains("--quiet takes no value"));
  // Only the mode's fusion passes may be skipped (the others make a correct package).
  CHECK_THAT(parse_error({"m.onnx", "--skip-passes", "fuse_matmul_transpose"}),
             Contains("--skip-passes: 'fuse_matmul_transpose' is not a pass inference imports "
                      "may skip (fold_batchnorm, fuse_conv, fuse_matmul_bias, "
                      "fuse_head_projections, fuse_layernorm, fuse_add_layernorm, fuse_gelu, "
                      "remove_zero_add, fuse_matmul_scale, fuse_add_softmax, fuse_attention, "
                      "fuse_attention_softmax)"));
  CHECK_THAT(parse_error({"m.onnx", "--mode", "training", "--skip-passes", "untie_parameters"}),
             Contains("not a pass training imports may skip (fuse_gelu, fuse_matmul_transpose, "
                      "fuse_linear_bias, fuse_head_projections, fuse_matmul_scale, "
                      "remove_zero_add, fuse_add_softmax, fuse_attention)"));
  CHECK_THAT(parse_error({"m.onnx", "--skip-passes", "fuse_conv,,fuse_gelu"}),
             Contains("--skip-passes needs pass names separated by commas"));
  CHECK_THAT(parse_error({"--info", "m.psm", "--skip-passes", "fuse_conv"}),
             Contains("--skip-passes does not apply to --info"));
  CHECK_THAT(parse_error({"a.onnx", "b.onnx"}),
             Contains("more than one input model: 'a.onnx' and 'b.onnx'"));
  CHECK_THAT(parse_error({"a.onnx", "--info", "m.psm"}), Contains("exclude each other"));
  CHECK_THAT(parse_error({"--zoo", "resnet152", "--info", "m.psm"}),
             Contains("exclude each other"));
  CHECK_THAT(parse_error({"--info", "m.psm", "--batch", "8"}),
             Contains("--batch does not apply to --info (it applies when importing MODEL.onnx)"));
  CHECK_THAT(parse_error({"--info", "m.psm", "-o", "x"}),
             Contains("--output does not apply to --info"));
  CHECK_THAT(parse_error({"--zoo", "resnet152", "--seq", "8"}),
             Contains("--seq does not apply to --zoo"));
  CHECK_THAT(parse_error({"--zoo", "../etc/passwd"}), Contains("--zoo needs a model name"));
  CHECK_THAT(parse_error({"m.psm"}),
             Contains("the output 'm.psm' would overwrite the input model"));
  CHECK_THAT(parse_error({"m.onnx", "-o", "./m.onnx"}),
             Contains("would overwrite the input model"));
}

TEST_CASE("psimport --help, usage errors and exit codes", "[psimport]") {
  Run r = run({"--help"});
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("psimport --info MODEL.psm"));
  CHECK_THAT(r.out, Contains("--grouping G"));
  // --skip-passes's list is written out: every pass it accepts is named.
  for (auto mode : {ps::onnx_loader::Mode::kInference, ps::onnx_loader::Mode::kTraining}) {
    for (const std::string& pass : ps::onnx_loader::skippable_passes(mode)) {
      CHECK_THAT(r.out, Contains(pass));
    }
  }
  CHECK(r.err.empty());

  r = run({"--batch", "8"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("psimport: nothing to do"));
  CHECK_THAT(r.err, Contains("Try 'psimport --help'."));
  CHECK(r.out.empty());
}

TEST_CASE("psimport --info describes a package and reports a bad one", "[psimport]") {
  ps::testing::TempDir dir;
  const auto model = ps::testing::make_small_model();
  const std::string path = dir.file("tiny.psm");
  REQUIRE(ps::onnx_loader::write_package(path, model.manifest, model.weights).ok());

  Run r = run({"--info", path});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK_THAT(r.out, Contains("model        tiny-mlp\n"));
  CHECK_THAT(r.out, Contains("layers       4: Gemm 2, Relu 1, Reshape 1\n"));

  auto bytes = ps::testing::read_file(path);
  bytes.pop_back();
  ps::testing::write_file(path, bytes);
  r = run({"--info", path});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains("psimport: " + path +
                             ": the weight blob [4096, 5132) extends past "
                             "the end of the file (5131 bytes)"));

  r = run({"--info", dir.file("missing.psm")});
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("missing.psm: no such file"));
}

TEST_CASE("psimport writes a zoo model, imports it and describes the package", "[psimport]") {
  ps::testing::TempDir dir;
  const std::string onnx = dir.file("resnet_tiny.onnx");
  Run r = run({"--zoo", "resnet_tiny", "-o", onnx});
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("wrote " + onnx));

  // Default output path: the input's with .psm in place of .onnx.
  r = run({onnx, "--batch", "4", "--grouping", "blocks"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string psm = dir.file("resnet_tiny.psm");
  CHECK_THAT(r.out, Contains("imported " + onnx + " -> " + psm));
  CHECK_THAT(r.out, Contains("fold_batchnorm="));
  CHECK_THAT(r.out, Contains("input  float32 [4,3,32,32]"));
  CHECK_THAT(r.out, Contains("outputs      logits  float32 [4,1000]"));
  CHECK_THAT(r.out, Contains("(blocks)"));

  r = run({"--info", psm});
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("mode inference, dims batch=4"));

  // A fusion skipped: not run, not recorded, its pattern left in the package.
  const std::string unfused = dir.file("unfused.psm");
  r = run({onnx, "-o", unfused, "--batch", "4", "--skip-passes", "fuse_conv"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("fold_batchnorm="));
  CHECK_THAT(r.out, !Contains("fuse_conv="));
  r = run({"--info", unfused});
  CHECK_THAT(r.out, !Contains("FusedConv"));
  CHECK_THAT(r.out, Contains("Relu"));

  // Training packages keep BatchNormalization as a layer.
  r = run({onnx, "-o", dir.file("train.psm"), "--batch", "2", "--mode", "training", "-q"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.empty());
  r = run({"--info", dir.file("train.psm")});
  CHECK_THAT(r.out, Contains("BatchNormalization"));
  CHECK_THAT(r.out, Contains("mode training"));
}

// `--zoo NAME --mode training` writes the graph to train: BERT with its classification head.
TEST_CASE("psimport writes BERT's training graph with --zoo --mode training", "[psimport]") {
  ps::testing::TempDir dir;
  const std::string onnx = dir.file("bert_tiny_train.onnx");
  Run r = run({"--zoo", "bert_tiny", "--mode", "training", "-o", onnx});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("training graph"));
  r = run({onnx, "--batch", "2", "--seq", "8", "--mode", "training"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("logits  float32 [2,2]"));
  CHECK_THAT(r.out, !Contains("pooler_output"));
}

TEST_CASE("psimport failures name the cause and write nothing", "[psimport]") {
  ps::testing::TempDir dir;
  Run r = run({"--zoo", "resnet9000", "-o", dir.file("r.onnx")});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("no model named 'resnet9000'"));
  CHECK_THAT(r.err, Contains("resnet152"));  // lists what the zoo has

  r = run({dir.file("missing.onnx"), "--batch", "8"});
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("missing.onnx"));
  CHECK_THAT(r.err, Contains("nothing was written"));

  ps::testing::write_file(dir.file("garbage.onnx"), std::vector<uint8_t>(100, 0xff));
  r = run({dir.file("garbage.onnx"), "--batch", "8"});
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("garbage.onnx"));
  CHECK(dir.entries() == std::vector<std::string>{"garbage.onnx"});
}

}  // namespace
