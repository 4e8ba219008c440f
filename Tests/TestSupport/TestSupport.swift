import Foundation
public enum TestSupportPlaceholder {}
