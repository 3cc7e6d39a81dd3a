import SwiftUI

@main
struct VitedgeDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
