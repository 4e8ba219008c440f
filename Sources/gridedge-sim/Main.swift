@main
struct Main {
  static func main() { print("gridedge-sim") }
}
